"""History pages (shared/room_log/paging.py): backward pages from windows of forward reads,
each one batch, checked against the page a message-at-a-time walk gives."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from shared.room_log import PublishResult, Stored
from shared.room_log.paging import BackwardPage, Page, Window, read_page


class FakeLog:
    """One room's messages in a namespace log whose oldest sequence is ``first``; counts the
    reads (each at most one batch)."""

    def __init__(self, seqs: list[int], first: int = 1, end: int | None = None) -> None:
        self.seqs = sorted(s for s in seqs if s >= first)
        self.first = first
        self.end = end
        self.reads: list[Window] = []

    async def last_seq(self, nsp: str, room: str) -> int:
        if self.end is not None:
            return self.end
        return self.seqs[-1] if self.seqs else 0

    async def first_seq(self, nsp: str) -> int:
        return self.first

    async def read(self, nsp: str, room: str, after: int, upto: int, limit: int) -> list[Stored]:
        self.reads.append(Window(after, upto, limit))
        return [Stored(s, b"%d" % s) for s in self.seqs if after < s <= upto][:limit]

    async def prev_of(self, nsp: str, room: str, seq: int) -> int:
        earlier = [s for s in self.seqs if s < seq]
        return earlier[-1] if earlier else 0

    async def publish(self, *args: object, **kwargs: object) -> PublishResult:
        raise NotImplementedError

    def begin_publish(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError


def page(log: FakeLog, since: int | None = None, before: int | None = None,
         limit: int = 100) -> Page | None:
    return asyncio.run(read_page(log, "/chat", "room:a", since, before, limit))


def walked(seqs: list[int], before: int, limit: int) -> list[tuple[int, int]]:
    """The page a prev_of walk gives: the newest ``limit`` below ``before``, each with its
    previous message."""
    ordered = sorted(seqs)
    below = [s for s in ordered if s < before][-limit:]
    return [(s, max([p for p in ordered if p < s], default=0)) for s in below]


def test_a_dense_room_is_one_read() -> None:
    log = FakeLog(list(range(1, 501)))

    result = page(log, before=401, limit=50)

    assert result is not None
    assert [(seq, prev) for seq, prev, _ in result.messages] == walked(log.seqs, 401, 50)
    assert result.complete
    assert len(log.reads) == 1


def test_a_dense_page_larger_than_a_batch_is_one_read_a_batch() -> None:
    log = FakeLog(list(range(1, 5001)))

    result = page(log, before=4001, limit=1000)

    assert result is not None
    assert [(seq, prev) for seq, prev, _ in result.messages] == walked(log.seqs, 4001, 1000)
    assert len(log.reads) == 4


def test_a_sparse_room_widens_its_windows() -> None:
    log = FakeLog(list(range(7, 100_000, 997)))

    result = page(log, before=90_000, limit=20)

    assert result is not None
    assert [(seq, prev) for seq, prev, _ in result.messages] == walked(log.seqs, 90_000, 20)
    assert len(log.reads) <= 12


def test_a_window_too_dense_for_a_batch_is_halved() -> None:
    paging = BackwardPage(top=1000, floor=0, limit=300, batch=256, span=300)

    window = paging.next_window()
    assert window == Window(700, 1000, 256)
    paging.took(window, [Stored(s, b"") for s in range(701, 957)])

    assert paging.next_window() == Window(850, 1000, 150)


def test_nothing_older_in_the_log_settles_prev_at_zero() -> None:
    paging = BackwardPage.before(before=10, end=50, first=1, limit=5)

    while (window := paging.next_window()) is not None:
        paging.took(window, [Stored(3, b""), Stored(6, b"")] if window.after < 3 else [])

    assert [m.seq for m in paging.messages] == [3, 6]
    assert paging.prev == 0


def test_a_trimmed_log_is_an_incomplete_short_page() -> None:
    log = FakeLog(list(range(1, 200)), first=150)

    result = page(log, before=160, limit=50)

    assert result is not None
    assert [seq for seq, _, _ in result.messages] == list(range(150, 160))
    assert not result.complete


def test_before_the_first_message_is_an_empty_page() -> None:
    result = page(FakeLog([5, 6]), before=1, limit=10)

    assert result == Page((), complete=True)


def test_since_reads_forward_with_prev_recomputed() -> None:
    log = FakeLog([2, 5, 9, 14])

    result = page(log, since=3, limit=2)

    assert result is not None
    assert [(seq, prev) for seq, prev, _ in result.messages] == [(5, 2), (9, 5)]
    assert result.complete


def test_since_past_a_trimmed_start_with_nothing_left_is_not_recoverable() -> None:
    log = FakeLog([2, 5], first=10, end=12)  # the room's last message trimmed as it was read

    assert page(log, since=3) is None


@given(st.lists(st.integers(1, 5_000), unique=True, max_size=300), st.integers(1, 5_100),
       st.integers(1, 300), st.integers(1, 40))
def test_any_layout_pages_as_the_walk_does(seqs: list[int], before: int, limit: int,
                                           first: int) -> None:
    log = FakeLog(seqs, first=first)

    result = page(log, before=before, limit=limit)

    assert result is not None
    assert [(seq, prev) for seq, prev, _ in result.messages] == walked(log.seqs, before, limit)
    assert all(window.limit <= 256 for window in log.reads)
