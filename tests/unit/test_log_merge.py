"""The one recovery merge (shared/merge.py): sorted, de-duplicated, prev settled, the first
remaining hole reported; several rooms interleaved in log order."""

from __future__ import annotations

from shared.merge import Chained, Logged, log_order, merge_room


def given(seq: int, prev: int, item: str = "") -> Logged[str]:
    return Logged(seq, prev, item or f"m{seq}")


def read_back(*seqs: int) -> list[Logged[str]]:
    return [Logged(seq, None, f"m{seq}") for seq in seqs]


def test_overlapping_copies_sort_and_keep_the_first() -> None:
    merged = merge_room(10, [given(14, 12, "history"), given(12, 10), given(14, 12, "live"),
                             given(17, 14)])

    assert [entry.seq for entry in merged.chain] == [12, 14, 17]
    assert merged.contiguous == ("m12", "history", "m17")
    assert merged.ok and merged.hole is None and merged.end == 17


def test_what_the_reader_has_is_dropped() -> None:
    merged = merge_room(14, [given(12, 10), given(14, 12), given(17, 14)])

    assert merged.contiguous == ("m17",)


def test_a_remaining_hole_splits_the_chain() -> None:
    merged = merge_room(10, [given(12, 10), given(14, 12), given(20, 17), given(23, 20)])

    assert merged.contiguous == ("m12", "m14")
    assert merged.rest == ("m20", "m23")
    assert not merged.ok
    assert merged.hole == (14, 17)
    assert merged.end == 14


def test_a_prev_below_the_position_hides_nothing() -> None:
    assert merge_room(10, [given(12, 3)]).ok


def test_read_back_messages_chain_on_from_what_the_log_holds_before_them() -> None:
    merged = merge_room(4, read_back(9, 6, 12), first_prev=2)

    assert [(entry.seq, entry.prev) for entry in merged.chain] == [(6, 2), (9, 6), (12, 9)]
    assert merged.ok


def test_read_back_messages_without_a_first_prev_follow_the_position() -> None:
    merged = merge_room(4, read_back(6, 9))

    assert [(entry.seq, entry.prev) for entry in merged.chain] == [(6, 4), (9, 6)]


def test_a_first_prev_past_the_position_is_a_hole() -> None:
    merged = merge_room(4, read_back(9), first_prev=7)

    assert merged.hole == (4, 7)
    assert merged.contiguous == ()


def test_nothing_to_merge() -> None:
    merged = merge_room(5, read_back())

    assert merged.ok and merged.chain == () and merged.end == 5


def test_rooms_interleave_in_log_order() -> None:
    rooms = {"a": (Chained(3, 0, "a3"), Chained(8, 3, "a8")),
             "b": (Chained(1, 0, "b1"), Chained(5, 1, "b5"), Chained(9, 5, "b9")),
             "c": ()}

    assert [(room, entry.item) for room, entry in log_order(rooms)] == [
        ("b", "b1"), ("a", "a3"), ("b", "b5"), ("a", "a8"), ("b", "b9")]
