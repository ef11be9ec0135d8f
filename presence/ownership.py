"""Which replica announces what: rendezvous hashing over the live replicas.

Every replica holds the same state (each folds the same bucket of records in), so each computes
the same events; a replica publishes only the events whose key it owns. Keys are the user for
online/offline, (room, user) for joined/left and typing, the room for count summaries — so a
user's status, or one member's comings and goings, always come from one replica, in order.
When a replica leaves, only the keys it owned move (to the next-highest score).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection

from presence.state import Event, RoomChange, RoomCount, Typing, UserStatus


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
