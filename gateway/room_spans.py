"""What recent replays read from a room's log, kept for the next replay of the same room.

When a gateway dies, every member of each of its rooms recovers on a survivor within seconds,
and all of a room's members recover from the same position (they were sent the same
messages). Each replay read the same messages again: a batch read and a ``prev`` probe per
member, about a hundred per room, for NATS to serve and this gateway to parse. The log is
append-only and a logged message never changes, so what one replay read is what the next
would read; only the end moves on as the room gets new messages.

A span is one room's messages in ``(lo, hi]`` as the log holds them (``hi`` the last one
found), with the room's last sequence before them; a read inside it costs nothing, one past
its end reads only the new part from the log and extends it. A message that the log trimmed
since is still served from here: it was logged, and whether a replay may start that far back
is decided before it reads (the log's first sequence). Spans live a few seconds (a storm's
length) and are bounded in rooms and messages.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from shared.merge import Chained, Logged, merge_room
from shared.recent import Recent

T = TypeVar("T")
Key = tuple[str, str]

SPAN_TTL_S = 10.0
SPAN_ROOMS = 512
SPAN_MESSAGES = 1_000
SPAN_CHAINS = 64


def chain_of(after: int, found: list[tuple[int, T | None]], before: int
             ) -> tuple[Chained[T], ...]:
    """The room's messages after ``after`` as one chain with their ``prev`` recomputed
    (``before``: the room's last sequence at or before ``after``); a message that could not
    be read is left out."""
    logged = (Logged(seq, None, item) for seq, item in found if item is not None)
    return merge_room(after, logged, before).chain


@dataclass(slots=True)
class Span(Generic[T]):
    """``seqs``/``items``: the room's messages in ``(lo, hi]`` in log order (an item is
    ``None`` for a message that could not be read); ``before``: the room's last sequence at
    or before ``lo`` (0: none)."""

    lo: int
    hi: int
    before: int
    made: float
    seqs: list[int] = field(default_factory=list)
    items: list[T | None] = field(default_factory=list)
    chains: dict[tuple[int, int], tuple[Chained[T], ...]] = field(default_factory=dict)

    def chain(self, after: int, upto: int) -> tuple[Chained[T], ...]:
        """:func:`chain_of` the messages in ``(after, upto]``, merged once per range while
        the span reaches ``upto`` (a range past its end may still fill)."""
        known = self.chains.get((after, upto))
        if known is not None:
            return known
        found, before = self.slice(after, upto)
        chain = chain_of(after, found, before) if found else ()
        if upto <= self.hi and len(self.chains) < SPAN_CHAINS:
            self.chains[(after, upto)] = chain
        return chain

    def slice(self, after: int, upto: int) -> tuple[list[tuple[int, T | None]], int]:
        """The messages in ``(after, upto]`` (``lo <= after``, ``upto <= hi``) and the room's
        last sequence at or before ``after``."""
        start = bisect.bisect_right(self.seqs, after)
        end = bisect.bisect_right(self.seqs, upto)
        before = self.seqs[start - 1] if start else self.before
        return list(zip(self.seqs[start:end], self.items[start:end], strict=True)), before

    def extend(self, messages: list[tuple[int, T | None]]) -> None:
        """The room's messages after ``hi`` as a read of the log found them. The span then
        reaches the last of them, not the end of the range read: a later message gets a
        higher sequence, so up to the last one found nothing can be added, while a range
        past the log's end may still fill."""
        for seq, item in messages:
            if seq > self.hi:
                self.seqs.append(seq)
                self.items.append(item)
                self.hi = seq


class RoomSpans(Generic[T]):
    def __init__(self, clock: Callable[[], float] = time.monotonic, ttl_s: float = SPAN_TTL_S,
                 rooms: int = SPAN_ROOMS, messages: int = SPAN_MESSAGES) -> None:
        self._clock = clock
        self._ttl_s = ttl_s
        self._messages = messages
        self._spans: Recent[Key, Span[T]] = Recent(rooms)

    def covering(self, key: Key, after: int) -> Span[T] | None:
        """A fresh span of ``key`` that starts at or before ``after`` and reaches it."""
        span = self._spans.get(key)
        if span is None:
            return None
        if self._clock() - span.made > self._ttl_s:
            self._spans.forget(key)
            return None
        return span if span.lo <= after <= span.hi else None

    def keep(self, key: Key, after: int, before: int,
             messages: list[tuple[int, T | None]]) -> None:
        """What a read after ``after`` found (``before``: the room's last sequence at or
        before ``after``), unless it is too long to keep."""
        if len(messages) > self._messages:
            return
        span: Span[T] = Span(after, after, before, self._clock())
        span.extend(messages)
        self._spans.put(key, span)

    def fits(self, span: Span[T], more: int) -> bool:
        return len(span.seqs) + more <= self._messages

    def drop(self, key: Key) -> None:
        self._spans.forget(key)
