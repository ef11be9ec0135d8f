"""The cluster-wide connection registry as pure data: who is connected where, and admission.

One KV entry per user holds that user's connections (id → gateway, namespaces, connected-at).
Liveness is per gateway, not per entry: an entry counts only while its gateway's liveness key
lives, so a SIGKILLed gateway's connections stop counting when its key expires even though
other gateways keep rewriting the same user entry. Admission is a pure function of the entry
and the set of live gateways; the I/O shell applies it with compare-and-set and retries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

VERSION = 1


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    gateway: str
    namespaces: tuple[str, ...]
    connected_at: float

    def to_json(self) -> dict[str, object]:
        return {"gateway": self.gateway, "namespaces": list(self.namespaces),
                "connected_at": self.connected_at}


@dataclass(slots=True)
class UserEntry:
    connections: dict[str, ConnectionInfo] = field(default_factory=dict)

    def encode(self) -> bytes:
        return orjson.dumps({"v": VERSION, "connections": {
            conn_id: info.to_json() for conn_id, info in self.connections.items()}})

    @classmethod
    def decode(cls, raw: bytes | None) -> UserEntry:
        """An entry from KV bytes; empty (not an error) for missing or unreadable values."""
        if not raw:
            return cls()
        try:
            data = orjson.loads(raw)
            conns = {
                str(conn_id): ConnectionInfo(str(info["gateway"]),
                                             tuple(str(n) for n in info["namespaces"]),
                                             float(info["connected_at"]))
                for conn_id, info in data["connections"].items()
            }
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return cls()
        return cls(conns)

    def live(self, gateways: Iterable[str]) -> dict[str, ConnectionInfo]:
        alive = set(gateways)
        return {cid: info for cid, info in self.connections.items() if info.gateway in alive}


@dataclass(frozen=True, slots=True)
class Admitted:
    entry: UserEntry


@dataclass(frozen=True, slots=True)
class Refused:
    live: int


def admit(entry: UserEntry, conn_id: str, info: ConnectionInfo, live_gateways: Iterable[str],
          limit: int) -> Admitted | Refused:
    """Add ``conn_id`` unless the user already has ``limit`` live connections. Entries of dead
    gateways are dropped on the way (they no longer count); re-admitting a connection that is
    already there reuses its slot."""
    alive = entry.live(live_gateways)
    if conn_id not in alive and len(alive) >= limit:
        return Refused(len(alive))
    return Admitted(UserEntry({**alive, conn_id: info}))


def release(entry: UserEntry, conn_id: str) -> UserEntry:
    return UserEntry({cid: info for cid, info in entry.connections.items() if cid != conn_id})


def drop_gateway(entry: UserEntry, gateway: str) -> UserEntry:
    return UserEntry({cid: info for cid, info in entry.connections.items()
                      if info.gateway != gateway})
