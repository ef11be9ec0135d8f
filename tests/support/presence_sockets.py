"""Sockets as a gateway reports them, folded into a :class:`~presence.state.PresenceState`
the one way the service does it: each change becomes the socket's next whole record (one more
``seq``, a stamp no older than the last) and goes through ``merge``.

The state has no per-socket mutations of its own (gateways own sockets; presence only folds
their records), so the state's tests speak in sockets through this.
"""

from __future__ import annotations

from dataclasses import replace

from presence.events import Event
from presence.state import Conn, ConnKey, PresenceState


class Sockets:
    """The records one view has written or merged, and the state they were folded into."""

    def __init__(self, state: PresenceState) -> None:
        self.state = state
        self.records: dict[ConnKey, Conn] = {}

    def connect(self, gateway: str, conn: str, user: str, now: float) -> list[Event]:
        old = self.records.get((gateway, conn))
        if old is not None and old.alive and old.user == user:
            return []
        return self._write((gateway, conn), now, user=user, rooms=frozenset(), alive=True)

    def disconnect(self, gateway: str, conn: str, now: float) -> list[Event]:
        old = self.records.get((gateway, conn))
        if old is None or not old.alive:
            return []
        return self._write((gateway, conn), now, alive=False)

    def join(self, gateway: str, conn: str, room: str, now: float) -> list[Event]:
        old = self.records.get((gateway, conn))
        if old is None or not old.alive or room in old.rooms:
            return []
        return self._write((gateway, conn), now, rooms=old.rooms | {room})

    def leave(self, gateway: str, conn: str, room: str, now: float) -> list[Event]:
        old = self.records.get((gateway, conn))
        if old is None or not old.alive or room not in old.rooms:
            return []
        return self._write((gateway, conn), now, rooms=old.rooms - {room})

    def merge_from(self, other: Sockets, now: float) -> list[Event]:
        """What a replica does with another's records: the newest per socket wins."""
        for key, theirs in other.records.items():
            ours = self.records.get(key)
            if ours is None or theirs.order() > ours.order():
                self.records[key] = theirs
        return self.state.merge(other.records, now)

    def _write(self, key: ConnKey, now: float, **changes: object) -> list[Event]:
        base = self.records.get(key) or Conn("", stamp=now, seq=-1)
        new = replace(base, **changes, stamp=max(now, base.stamp), seq=base.seq + 1)  # type: ignore[arg-type]
        self.records[key] = new
        return self.state.merge({key: new}, now)
