"""``room:history`` pages read from a room's log in batches.

A namespace's log holds every room's messages in one sequence, and JetStream reads a room's
messages only forward (``next_by_subj``) or one at a time backward (``multi_last`` with
``up_to_seq``). Paging backward one message at a time (``before``, scroll-back) costs a round
trip per message; :class:`BackwardPage` instead decides which window of sequences to read
forward next, each read one direct-get batch: a window of ``w`` sequences holds at most ``w``
messages of any room, so a window no wider than a batch is read whole; a window that turns
out sparse makes the next one wider (by the density seen), one that turns out too dense for a
batch is halved. The decisions are pure; :func:`read_page` is the short shell around them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from shared.merge import Logged, merge_room
from shared.room_log import RoomLog, Stored

BATCH = 256
"""Messages asked for in one read: one direct-get batch of the NATS log."""


@dataclass(frozen=True, slots=True)
class Window:
    """Read the room's messages with ``after < seq <= upto``, at most ``limit`` of them."""

    after: int
    upto: int
    limit: int


@dataclass(slots=True)
class BackwardPage:
    """The newest ``limit`` messages of a room at or below ``top``, none at or below
    ``floor`` (the log holds nothing there). :meth:`next_window` says what to read,
    :meth:`took` takes what the read found, :attr:`messages` is the page."""

    top: int
    floor: int
    limit: int
    batch: int = BATCH
    span: int = 0
    found: list[Stored] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.span = self.span or min(self.limit, self.batch)  # a dense room: one read a batch

    @classmethod
    def before(cls, before: int, end: int, first: int, limit: int,
               batch: int = BATCH) -> BackwardPage:
        """The page below ``before`` of a room whose last message is ``end``, in a log whose
        oldest message is ``first``."""
        return cls(top=min(before - 1, end), floor=max(first - 1, 0), limit=limit, batch=batch)

    def next_window(self) -> Window | None:
        """The next read, or ``None`` when the page is full or the log has nothing older."""
        if len(self.found) >= self.limit or self.top <= self.floor:
            return None
        after = max(self.floor, self.top - self.span)
        return Window(after, self.top, min(self.top - after, self.batch))

    def took(self, window: Window, stored: list[Stored]) -> None:
        """What reading ``window`` found (oldest first). A full read that stopped short of
        the window's top may have missed newer messages: the window is halved, read again."""
        width = window.upto - window.after
        if len(stored) >= window.limit and stored[-1].seq < window.upto:
            self.span = max(1, width // 2)
            return
        self.found[:0] = stored
        self.top = window.after
        wanted = min(self.limit - len(self.found), self.batch)
        if not stored:
            self.span = 2 * width
        elif wanted > 0:
            self.span = max(1, math.ceil(wanted * width / len(stored)))

    @property
    def messages(self) -> list[Stored]:
        """The page, oldest first."""
        return self.found[-self.limit:]

    @property
    def prev(self) -> int | None:
        """The room's message before the page, when the reads found it (0: the log holds
        none); ``None`` when it is still to be asked for."""
        if len(self.found) > self.limit:
            return self.found[-self.limit - 1].seq
        return 0 if self.top <= self.floor else None


@dataclass(frozen=True, slots=True)
class Page:
    """Messages with their ``prev`` settled, oldest first; ``complete: false`` when the log
    no longer reaches back over the whole range asked for."""

    messages: tuple[tuple[int, int, bytes], ...]
    complete: bool


async def read_page(log: RoomLog, nsp: str, room: str, since: int | None, before: int | None,
                    limit: int) -> Page | None:
    """Up to ``limit`` messages after ``since`` (oldest first) or the newest ``limit`` before
    ``before``. ``None``: nothing of the range is left (``not_recoverable``). Raises
    :class:`~shared.room_log.LogUnavailable`."""
    end = await log.last_seq(nsp, room)
    first = await log.first_seq(nsp)
    prev: int | None = None
    if before is not None:
        paging = BackwardPage.before(before, end, first, limit)
        while (window := paging.next_window()) is not None:
            paging.took(window, await log.read(nsp, room, window.after, window.upto,
                                               window.limit))
        stored, prev = paging.messages, paging.prev
        complete = len(stored) == limit or first <= 1
    else:
        after = since or 0
        stored = await log.read(nsp, room, after, end, limit)
        complete = after + 1 >= first
        if not complete and not stored and after < end:
            return None
    if stored and prev is None:
        prev = await log.prev_of(nsp, room, stored[0].seq)
    merged = merge_room(0, (Logged(m.seq, None, m.body) for m in stored), prev or 0)
    return Page(tuple((entry.seq, entry.prev, entry.item) for entry in merged.chain), complete)
