"""History + held live messages merged like centrifuge's MergePublications: sorted by seq,
de-duplicated, what the client has dropped, and a failure when a hole remains."""

from __future__ import annotations

from typing import Any

from client.merge import merge_messages, position_of


def msg(seq: int, prev: int, room: str = "room:a", **extra: Any) -> dict[str, Any]:
    return {"room": room, "id": f"m{seq}", "seq": seq, "prev": prev, "from": "u",
            "text": f"t{seq}", "ts": 0, **extra}


def seqs(messages: tuple[Any, ...]) -> list[int]:
    return [m["seq"] for m in messages]


def test_history_and_live_merge_sorted_and_unique() -> None:
    history = [msg(14, 12), msg(12, 10), msg(17, 14)]
    live = [msg(20, 17), msg(17, 14)]

    merged = merge_messages(10, history, live)

    assert merged.ok
    assert seqs(merged.contiguous) == [12, 14, 17, 20]
    assert merged.end == 20
    assert merged.hole is None


def test_messages_at_or_below_the_position_are_dropped() -> None:
    merged = merge_messages(14, [msg(12, 10), msg(14, 12), msg(17, 14)], [msg(20, 17)])

    assert merged.ok
    assert seqs(merged.contiguous) == [17, 20]


def test_a_remaining_gap_fails_the_merge_and_names_the_hole() -> None:
    history = [msg(12, 10), msg(14, 12)]  # 17 (prev 14) is missing
    live = [msg(20, 17)]

    merged = merge_messages(10, history, live)

    assert not merged.ok
    assert seqs(merged.contiguous) == [12, 14]
    assert seqs(merged.rest) == [20]
    assert merged.hole == (14, 17)


def test_a_gap_right_after_the_position_leaves_nothing_contiguous() -> None:
    merged = merge_messages(10, [], [msg(20, 17), msg(23, 20)])

    assert not merged.ok
    assert merged.contiguous == ()
    assert seqs(merged.rest) == [20, 23]
    assert merged.hole == (10, 17)


def test_the_first_copy_of_a_duplicate_wins() -> None:
    merged = merge_messages(0, [msg(5, 0, text="history")], [msg(5, 0, text="live")])

    assert [m["text"] for m in merged.contiguous] == ["history"]


def test_a_prev_below_the_position_hides_nothing() -> None:
    # A chain that restarted lower (prev under what we hold) cannot be hiding a message.
    merged = merge_messages(10, [], [msg(12, 3)])

    assert merged.ok
    assert seqs(merged.contiguous) == [12]


def test_messages_without_a_position_cannot_be_merged() -> None:
    unordered = {"room": "room:a", "text": "no seq"}

    merged = merge_messages(0, [unordered], [msg(1, 0)])

    assert seqs(merged.contiguous) == [1]


def test_position_of_accepts_only_non_negative_integers() -> None:
    assert position_of(msg(3, 1)) is not None
    assert position_of({"room": "r", "seq": True, "prev": 0}) is None
    assert position_of({"room": "r", "seq": "3", "prev": 0}) is None
    assert position_of({"room": "r", "seq": 3, "prev": -1}) is None
    assert position_of({"seq": 3, "prev": 1}) is None
