"""Merging fetched history with held live messages, as a pure function.

After a gap the client holds the live message(s) that revealed it and fetches the missing
range with ``room:history``. The two lists overlap and arrive in any order; the merge sorts
by ``seq``, drops duplicates and what the client already has, and checks the per-room
``prev`` chain so a hole that is still there is reported, never papered over. The merge is
the gateway's too (:mod:`shared.merge`); this module reads the positions off the wire.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.merge import Logged, Merged, merge_room

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


Merge = Merged[Message]


def merge_messages(last: int, history: Iterable[Message], live: Iterable[Message]) -> Merge:
    """Sort, de-duplicate (first copy wins: history's recomputed ``prev`` is as good as
    live's), drop ``seq <= last`` and split at the first broken ``prev`` link
    (:func:`shared.merge.merge_room`); messages without a position cannot be ordered and are
    left out."""
    logged = (Logged(pos.seq, pos.prev, message) for message in (*history, *live)
              if (pos := position_of(message)) is not None)
    return merge_room(last, logged)
