"""The bounded map of a writer's own last writes (registry entries, presence records)."""

from __future__ import annotations

from shared.recent import Recent


def test_the_least_recently_written_key_is_forgotten_first() -> None:
    recent: Recent[str, int] = Recent(2)
    recent.put("a", 1)
    recent.put("b", 2)
    recent.put("a", 3)  # written again: now the newest
    recent.put("c", 4)
    assert "b" not in recent and len(recent) == 2
    assert (recent.get("a"), recent.get("c")) == (3, 4)


def test_a_forgotten_key_is_gone_and_forgetting_twice_is_harmless() -> None:
    recent: Recent[str, int] = Recent(4)
    recent.put("a", 1)
    recent.forget("a")
    recent.forget("a")
    assert recent.get("a") is None and len(recent) == 0
