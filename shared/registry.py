"""The cluster-wide connection registry as pure data: who is connected where, and admission.

One KV entry per user holds that user's connections (id → gateway, namespaces, connected-at).
Liveness is per gateway run, not per entry: an entry counts only while its gateway's liveness
key lives and holds the boot id the entry was written under, so a SIGKILLed gateway's
connections stop counting when its key expires (even though other gateways keep rewriting the
same user entry) or as soon as the gateway restarts under the same id with a new boot.
Admission is a pure function of the entry and the live gateways' boots; the I/O shell applies
it with compare-and-set and retries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson

VERSION = 1


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    gateway: str
    namespaces: tuple[str, ...]
    connected_at: float
    boot: str = ""
    """The gateway run that holds the connection; empty in entries written before boots."""

    def to_json(self) -> dict[str, object]:
        """The public view (the router's API); the boot is the registry's own business."""
        return {"gateway": self.gateway, "namespaces": list(self.namespaces),
                "connected_at": self.connected_at}

    def alive_in(self, live: Mapping[str, str]) -> bool:
        """Its gateway's liveness key is there and names this connection's run."""
        current = live.get(self.gateway)
        return current is not None and (not self.boot or not current or current == self.boot)


@dataclass(slots=True)
class UserEntry:
    connections: dict[str, ConnectionInfo] = field(default_factory=dict)

    def encode(self) -> bytes:
        return orjson.dumps({"v": VERSION, "connections": {
            conn_id: {**info.to_json(), "boot": info.boot}
            for conn_id, info in self.connections.items()}})

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
                                             float(info["connected_at"]),
                                             str(info.get("boot", "")))
                for conn_id, info in data["connections"].items()
            }
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return cls()
        return cls(conns)

    def live(self, gateways: Mapping[str, str]) -> dict[str, ConnectionInfo]:
        """The connections that count: ``gateways`` maps each live gateway to its boot."""
        return {cid: info for cid, info in self.connections.items() if info.alive_in(gateways)}


@dataclass(frozen=True, slots=True)
class Admitted:
    entry: UserEntry


@dataclass(frozen=True, slots=True)
class Refused:
    live: int


def admit(entry: UserEntry, conn_id: str, info: ConnectionInfo,
          live_gateways: Mapping[str, str], limit: int) -> Admitted | Refused:
    """Add ``conn_id`` unless the user already has ``limit`` live connections. Entries of dead
    gateways and of earlier runs are dropped on the way (they no longer count); re-admitting
    a connection that is already there reuses its slot."""
    alive = entry.live(live_gateways)
    if conn_id not in alive and len(alive) >= limit:
        return Refused(len(alive))
    return Admitted(UserEntry({**alive, conn_id: info}))


def release(entry: UserEntry, conn_id: str) -> UserEntry:
    return UserEntry({cid: info for cid, info in entry.connections.items() if cid != conn_id})


def drop_gateway(entry: UserEntry, gateway: str) -> UserEntry:
    return UserEntry({cid: info for cid, info in entry.connections.items()
                      if info.gateway != gateway})
