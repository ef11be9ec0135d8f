"""The prev-chain verdict: what one message of a durable room is, given the last one held.

Every message of a durable namespace carries ``seq`` (its position in the namespace's log)
and ``prev`` (the room's previous ``seq``, 0 for the first). Whoever holds the last ``seq``
delivered for a room (a gateway's feed, the SDK's tracker) can tell from these two numbers
alone whether a message is new, a duplicate, or proof that messages were missed, and which.
The gateway and the SDK each keep their own bookkeeping around it (frontier and repairs;
held messages and fills); the rule itself is this one function.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class New:
    """The next message of the room (or the first one seen): deliver it."""


@dataclass(frozen=True, slots=True)
class Duplicate:
    """At or below the last ``seq`` held: already delivered."""


@dataclass(frozen=True, slots=True)
class Gap:
    """Messages of the room after ``after`` and before ``before`` are missing."""

    after: int
    before: int


NEW = New()
DUPLICATE = Duplicate()
Verdict = New | Duplicate | Gap


def observe(last: int | None, seq: int, prev: int) -> Verdict:
    """The verdict on message ``seq`` with ``prev`` when ``last`` was the room's last
    delivered ``seq`` (``None``: nothing is known of the room, so nothing can be missing).
    A ``prev`` below ``last`` hides nothing (the log skipped messages of other rooms, or a
    recomputed ``prev`` went further back); only one above it is a hole."""
    if last is None:
        return NEW
    if seq <= last:
        return DUPLICATE
    if prev > last:
        return Gap(last, seq)
    return NEW
