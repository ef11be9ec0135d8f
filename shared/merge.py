"""Merging a room's logged messages into log order with their prev chain, as a pure function.

Recovery puts messages of a room together from more than one place: the SDK merges a
``room:history`` page with the live messages it held while the page was fetched; a gateway
replays, repairs and pages what it reads back from the log, where a message's ``prev`` is not
stored and has to be recomputed from the message before it. Both want the same thing, which
centrifuge's ``MergePublications`` does with its offsets: sort by ``seq``, drop duplicates and
what the reader already has, give every message its ``prev``, and report the first hole that
is still there instead of papering over it. :func:`log_order` then interleaves several rooms'
chains by ``seq``, the order the namespace's log has them in.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Logged(Generic[T]):
    """A message at its log position. ``prev`` as it came with the message, or ``None`` when
    it was read back from the log, where the room's messages follow each other."""

    seq: int
    prev: int | None
    item: T


@dataclass(frozen=True, slots=True)
class Chained(Generic[T]):
    """A merged message with its ``prev`` settled."""

    seq: int
    prev: int
    item: T


@dataclass(frozen=True, slots=True)
class Merged(Generic[T]):
    """``chain``: every message after the position, in order; the first ``split`` chain on
    from the position, the first of the others begins a hole. ``end``: the position after
    the contiguous part."""

    chain: tuple[Chained[T], ...]
    split: int
    end: int

    @property
    def contiguous(self) -> tuple[T, ...]:
        return tuple(entry.item for entry in self.chain[:self.split])

    @property
    def rest(self) -> tuple[T, ...]:
        return tuple(entry.item for entry in self.chain[self.split:])

    @property
    def ok(self) -> bool:
        return self.split == len(self.chain)

    @property
    def hole(self) -> tuple[int, int] | None:
        """Missing messages of the room have ``after < seq <= upto``."""
        if self.ok:
            return None
        return self.end, self.chain[self.split].prev


def merge_room(last: int, messages: Iterable[Logged[T]],
               first_prev: int | None = None) -> Merged[T]:
    """Sort, de-duplicate (the first copy wins: a recomputed ``prev`` is as good as a live
    one), drop ``seq <= last`` and split at the first broken ``prev`` link. A message without
    its ``prev`` follows the one before it; the first one follows ``first_prev`` (what the
    log holds before it) or, unknown, ``last``. A ``prev`` at or below the position reached
    hides nothing; only one above it is a hole."""
    by_seq: dict[int, Logged[T]] = {}
    for message in messages:
        if message.seq > last:
            by_seq.setdefault(message.seq, message)
    chain: list[Chained[T]] = []
    before = last if first_prev is None else first_prev
    end, split = last, None
    for seq in sorted(by_seq):
        message = by_seq[seq]
        prev = before if message.prev is None else message.prev
        if split is None and prev > end:
            split = len(chain)
        chain.append(Chained(seq, prev, message.item))
        before = seq
        if split is None:
            end = seq
    return Merged(tuple(chain), len(chain) if split is None else split, end)


def log_order(rooms: Mapping[str, Sequence[Chained[T]]]) -> Iterator[tuple[str, Chained[T]]]:
    """Several rooms' chains interleaved by ``seq``: the namespace's log order, which is the
    order the rooms' live messages were delivered in."""
    return heapq.merge(*([(room, entry) for entry in chain] for room, chain in rooms.items()),
                       key=lambda pair: pair[1].seq)
