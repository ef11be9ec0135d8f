"""Which replica announces what: rendezvous hashing over the live replicas.

Every replica holds the same state (each folds the same bucket of records in), so each computes
the same events; a replica publishes only the events whose key it owns. Keys are the user for
online/offline, (room, user) for joined/left and typing, the room for count summaries — so a
user's status, or one member's comings and goings, always come from one replica, in order.
When a replica leaves, only the keys it owned move (to the next-highest score).

:class:`Owners` is the replica set as the bucket tells it, and the short memory of events
computed but owned by someone else: when an owner dies without leaving, the events it owned
since its last liveness refresh are announced again by their new owners (the one place an
event can go out twice; clients treat presence events as idempotent state). Pure: time comes
in as ``now``, liveness as the changes the caller folds in.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Collection

from presence.events import Event, RoomChange, RoomCount, Typing, UserStatus

NOBODY = ""
"""The owner of events computed while no replica was known."""


def score(replica: str, key: str) -> bytes:
    return hashlib.blake2b(f"{replica}\0{key}".encode(), digest_size=8).digest()


def owner(key: str, replicas: Collection[str]) -> str:
    """The replica that announces ``key``; ``replicas`` must not be empty."""
    return max(replicas, key=lambda replica: score(replica, key))


def event_key(event: Event) -> str:
    if isinstance(event, UserStatus):
        return f"u\0{event.user}"
    if isinstance(event, RoomChange | Typing):
        return f"m\0{event.room}\0{event.user}"
    assert isinstance(event, RoomCount)
    return f"r\0{event.room}"


def run_key(gateway: str, boot: str) -> str:
    """The key of one gateway run: its owner deletes the run's records once it is dead."""
    return f"g\0{gateway}\0{boot}"


class Owners:
    """The replica set and the events this replica kept for others (``window`` seconds).

    Replicas join the set only as their liveness key shows up in the bucket and leave it as
    the key goes, so every replica changes owners at the same point of the bucket's order.
    """

    def __init__(self, me: str, window: float) -> None:
        self.me = me
        self.window = window
        self.replicas: set[str] = set()
        self._last_beat: dict[str, float] = {}
        self._not_mine: deque[tuple[float, str, Event]] = deque()

    def owns(self, key: str) -> bool:
        return bool(self.replicas) and owner(key, self.replicas) == self.me

    def seen(self, replica: str, now: float) -> list[Event]:
        """A liveness refresh. The first replica to appear owns what was computed while
        nobody did: those events are returned for announcing."""
        first = replica not in self.replicas
        self.replicas.add(replica)
        self._last_beat[replica] = now
        if not (first and len(self.replicas) == 1):
            return []
        orphans = [event for _, was, event in self._not_mine if was == NOBODY]
        self._not_mine = deque(item for item in self._not_mine if item[1] != NOBODY)
        return orphans

    def gone(self, replica: str, died: bool) -> list[Event]:
        """A replica left (``bye``) or died (its key expired). A dead one's events since its
        last refresh are returned: it may not have published them."""
        self.replicas.discard(replica)
        since = self._last_beat.pop(replica, 0.0)
        if not died or replica == self.me:
            return []
        return [event for at, was, event in self._not_mine if was == replica and at >= since]

    def mine(self, events: list[Event], now: float) -> list[Event]:
        """The events this replica announces; the others are kept for ``window`` seconds."""
        kept = self._not_mine
        horizon = now - self.window
        while kept and kept[0][0] < horizon:
            kept.popleft()
        announced: list[Event] = []
        for event in events:
            was = owner(event_key(event), self.replicas) if self.replicas else NOBODY
            if was == self.me:
                announced.append(event)
            else:
                kept.append((now, was, event))
        return announced
