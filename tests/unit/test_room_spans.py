"""Spans of a room's log kept for the next replay: slices inside a span, the room's last
sequence before a slice, extension past the end, freshness and bounds. The fan-out's use of
them (fewer log reads, the same replay) is in test_fanout.py."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.room_spans import RoomSpans, Span

KEY = ("/chat", "room:a")


def span(lo: int, before: int, *seqs: int) -> Span[str]:
    made: Span[str] = Span(lo, lo, before, 0.0)
    made.extend([(seq, f"m{seq}") for seq in seqs])
    return made


def test_a_slice_gives_the_messages_in_range_and_the_last_one_before() -> None:
    s = span(10, 7, 12, 15, 20)

    assert s.slice(10, 20) == ([(12, "m12"), (15, "m15"), (20, "m20")], 7)
    assert s.slice(12, 15) == ([(15, "m15")], 12)
    assert s.slice(13, 19) == ([(15, "m15")], 12)
    assert s.slice(20, 20) == ([], 20)


def test_the_span_reaches_the_last_message_found_not_the_range_read() -> None:
    s = span(10, 7, 12)
    assert s.hi == 12
    s.extend([(12, "again"), (30, "m30")])
    assert (s.seqs, s.hi) == ([12, 30], 30)
    assert s.items == ["m12", "m30"]


@given(st.sets(st.integers(1, 60)), st.integers(0, 60), st.integers(0, 60))
def test_a_slice_is_what_the_log_holds(log: set[int], after: int, upto: int) -> None:
    room = sorted(log)
    lo = min(after, 5)
    s = span(lo, max([q for q in room if q <= lo], default=0), *[q for q in room if q > lo])
    if after > s.hi:
        return
    found, before = s.slice(after, upto)
    assert [seq for seq, _ in found] == [q for q in room if after < q <= upto]
    assert before == max([q for q in room if q <= after], default=0)


def test_a_span_covers_from_its_start_to_its_last_message_while_fresh() -> None:
    now = [0.0]
    spans: RoomSpans[str] = RoomSpans(clock=lambda: now[0], ttl_s=10.0)
    spans.keep(KEY, 10, 7, [(12, "m12"), (15, "m15")])

    assert spans.covering(KEY, 9) is None
    assert spans.covering(KEY, 16) is None
    assert spans.covering(("/chat", "room:b"), 12) is None
    found = spans.covering(KEY, 12)
    assert found is not None and found.slice(12, 15) == ([(15, "m15")], 12)

    now[0] = 10.5
    assert spans.covering(KEY, 12) is None


def test_spans_are_bounded_in_messages_and_rooms() -> None:
    spans: RoomSpans[str] = RoomSpans(rooms=2, messages=3)
    spans.keep(KEY, 0, 0, [(1, "a"), (2, "b"), (3, "c"), (4, "d")])
    assert spans.covering(KEY, 0) is None

    spans.keep(KEY, 0, 0, [(1, "a")])
    kept = spans.covering(KEY, 0)
    assert kept is not None and spans.fits(kept, 2) and not spans.fits(kept, 3)

    spans.keep(("/chat", "b"), 0, 0, [(1, "a")])
    spans.keep(("/chat", "c"), 0, 0, [(1, "a")])
    assert spans.covering(KEY, 0) is None
    spans.drop(("/chat", "c"))
    assert spans.covering(("/chat", "c"), 0) is None


def test_a_ranges_chain_is_merged_once_while_the_span_reaches_its_end() -> None:
    s = span(10, 7, 12, 15)

    chain = s.chain(10, 15)
    assert [(c.seq, c.prev) for c in chain] == [(12, 7), (15, 12)]
    assert s.chain(10, 15) is chain

    past_end = s.chain(12, 40)
    assert [(c.seq, c.prev) for c in past_end] == [(15, 12)]
    s.extend([(33, "m33")])
    assert [(c.seq, c.prev) for c in s.chain(12, 40)] == [(15, 12), (33, 15)]


def test_a_message_that_could_not_be_read_is_left_out_of_the_chain() -> None:
    s: Span[str] = Span(0, 0, 0, 0.0)
    s.extend([(1, "m1"), (2, None), (3, "m3")])

    assert [(c.seq, c.prev) for c in s.chain(0, 3)] == [(1, 0), (3, 1)]
