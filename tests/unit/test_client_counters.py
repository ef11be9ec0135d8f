"""The SDK's counters: every one starts at zero, a snapshot is a plain dict of all of them
that does not change when the counters move on."""

from __future__ import annotations

from client.counters import Counters

DOCUMENTED = {  # client/README.md, "Counters for chaos tests"
    "messages_delivered", "duplicates_dropped", "gaps_detected", "gaps_filled",
    "gaps_unrecoverable", "recoveries", "recovery_misses", "rejoins", "ack_retries",
    "reconnect_attempts",
}


def test_every_counter_starts_at_zero_and_the_documented_ones_exist() -> None:
    snapshot = Counters().snapshot()
    assert set(snapshot) >= DOCUMENTED
    assert set(snapshot.values()) == {0}


def test_a_snapshot_is_a_copy() -> None:
    counters = Counters()
    counters.messages_delivered += 2
    counters.duplicates_dropped += 1
    before = counters.snapshot()
    counters.messages_delivered += 1
    assert before["messages_delivered"] == 2 and before["duplicates_dropped"] == 1
    assert counters.snapshot()["messages_delivered"] == 3
    before["gaps_filled"] = 99
    assert counters.gaps_filled == 0
