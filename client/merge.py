"""Merging fetched history with held live messages, as a pure function.

After a gap the client holds the live message(s) that revealed it and fetches the missing
range with ``room:history``. The two lists overlap and arrive in any order; the merge sorts
by ``seq``, drops duplicates and what the client already has, and checks the per-room
``prev`` chain so a hole that is still there is reported, never papered over (centrifuge's
``MergePublications`` does the same with its offsets).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Message = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Position:
    room: str
    seq: int
    prev: int


def position_of(message: Message) -> Position | None:
    """The room position a message carries, or ``None`` when it has none (an ephemeral
    namespace, or a gateway without the log) and cannot be ordered."""
    room, seq, prev = message.get("room"), message.get("seq"), message.get("prev")
    if not isinstance(room, str) or not _is_count(seq) or not _is_count(prev):
        return None
    assert isinstance(seq, int) and isinstance(prev, int)
    return Position(room, seq, prev)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True, slots=True)
class Merge:
    """``contiguous`` chains on from the known position, in order; ``rest`` starts at the
    first hole. The merge succeeded iff nothing is left in ``rest``."""

    contiguous: tuple[Message, ...]
    rest: tuple[Message, ...]
    end: int  # the position after the contiguous part

    @property
    def ok(self) -> bool:
        return not self.rest

    @property
    def hole(self) -> tuple[int, int] | None:
        """Missing messages of the room have ``after < seq <= upto``."""
        if not self.rest:
            return None
        first = position_of(self.rest[0])
        assert first is not None
        return self.end, first.prev


def merge_messages(last: int, history: Iterable[Message], live: Iterable[Message]) -> Merge:
    """Sort, de-duplicate (first copy wins: history's recomputed ``prev`` is as good as
    live's), drop ``seq <= last`` and split at the first broken ``prev`` link."""
    by_seq: dict[int, Message] = {}
    for message in (*history, *live):
        pos = position_of(message)
        if pos is not None and pos.seq > last:
            by_seq.setdefault(pos.seq, message)
    ordered = [by_seq[seq] for seq in sorted(by_seq)]
    end = last
    for index, message in enumerate(ordered):
        pos = position_of(message)
        assert pos is not None
        # prev below the position held cannot hide anything; only prev above it is a hole.
        if pos.prev > end:
            return Merge(tuple(ordered[:index]), tuple(ordered[index:]), end)
        end = pos.seq
    return Merge(tuple(ordered), (), end)
