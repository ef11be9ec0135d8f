"""Local room membership: which members of this gateway are in which (namespace, room).

Pure bookkeeping that says when a room gains its first local member or loses its last, which
is exactly when the gateway must subscribe or unsubscribe the room's fan-out subject.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable
from typing import Any, Generic, TypeVar

M = TypeVar("M", bound=Hashable)
RoomKey = tuple[str, str]
_NONE: dict[Any, None] = {}


class RoomRegistry(Generic[M]):
    def __init__(self) -> None:
        self._members: dict[RoomKey, dict[M, None]] = {}

    def add(self, key: RoomKey, member: M) -> bool:
        """Add; ``True`` when this made the room's first local member."""
        members = self._members.get(key)
        if members is None:
            self._members[key] = {member: None}
            return True
        members[member] = None
        return False

    def remove(self, key: RoomKey, member: M) -> bool:
        """Remove; ``True`` when the room has no local member left."""
        members = self._members.get(key)
        if members is None or member not in members:
            return False
        del members[member]
        if not members:
            del self._members[key]
            return True
        return False

    def members(self, key: RoomKey) -> list[M]:
        members = self._members.get(key)
        return list(members) if members else []

    def live(self, key: RoomKey) -> Collection[M]:
        """The members themselves, not a copy: for a loop that changes no membership."""
        return self._members.get(key) or _NONE

    def __contains__(self, key: object) -> bool:
        return key in self._members

    def __len__(self) -> int:
        return len(self._members)
