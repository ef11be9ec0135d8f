"""An Engine.IO session on the wire between gateways: what a takeover hands over.

A polling session's upgrade WebSocket may land on a gateway other than the session's owner
(no sticky sessions). That gateway asks the owner for the whole session in one NATS request,
and this is the answer: every namespace socket (identity, rooms, recovery id and the offset of
what it has been sent, application data, typing), the limiters, the packets waiting for the
client's next poll and the ones it posted meanwhile. Pure: encode, decode, and the clock
conversions, since each process's monotonic clock is its own (ages travel, not times).
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.limits import LimitClass
from shared.abuse import AbuseMeter
from shared.jwtauth import Identity
from shared.ratelimit import TokenBucket

VERSION = 1


class BadState(ValueError):
    """The bytes are not a session this version can take over."""


@dataclass(slots=True)
class SocketState:
    nsp: str
    sid: str
    identity: Identity
    rooms: list[str]
    pid: str | None = None
    durable: bool = False
    data: Any = None
    offset: str | None = None
    """Durable sockets: what the socket has been sent, as a recovering client would say it."""
    typing: dict[str, float] = field(default_factory=dict)
    """Seconds since each room's last ``typing:start`` went out."""


@dataclass(slots=True)
class SessionState:
    sid: str
    upgrade_identity: Identity | None
    headers: dict[str, str]
    sockets: list[SocketState]
    buckets: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    """Limit class → (rate, burst, tokens now)."""
    meters: dict[str, tuple[int, float, list[float]]] = field(default_factory=dict)
    """Limit class → (threshold, window, ages of the rejections counted)."""
    packets: list[str | bytes] = field(default_factory=list)
    """Waiting for the client's next poll, in order."""
    posted: list[str | bytes] = field(default_factory=list)
    """Posted by the client while the owner handed the session over, not yet read."""

    def encode(self) -> bytes:
        return orjson.dumps({
            "v": VERSION, "sid": self.sid, "identity": _identity_json(self.upgrade_identity),
            "headers": self.headers, "sockets": [_socket_json(s) for s in self.sockets],
            "buckets": self.buckets, "meters": self.meters,
            "packets": [_packet_json(p) for p in self.packets],
            "posted": [_packet_json(p) for p in self.posted],
        })

    @classmethod
    def decode(cls, raw: bytes) -> SessionState:
        try:
            data = orjson.loads(raw)
            if data.get("v") != VERSION:
                raise BadState(f"version {data.get('v')!r}")
            return cls(
                str(data["sid"]), _identity(data["identity"]),
                {str(k): str(v) for k, v in data["headers"].items()},
                [_socket(s) for s in data["sockets"]],
                {str(k): (float(r), float(b), float(t))
                 for k, (r, b, t) in data["buckets"].items()},
                {str(k): (int(n), float(w), [float(a) for a in ages])
                 for k, (n, w, ages) in data["meters"].items()},
                [_packet(p) for p in data["packets"]], [_packet(p) for p in data["posted"]])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadState(str(exc)) from exc


def export_buckets(buckets: Mapping[LimitClass, TokenBucket], now: float
                   ) -> dict[str, tuple[float, float, float]]:
    out = {}
    for limit, bucket in buckets.items():
        tokens = min(bucket.burst, bucket.tokens + max(0.0, now - bucket.updated) * bucket.rate)
        out[limit.value] = (bucket.rate, bucket.burst, tokens)
    return out


def import_buckets(state: Mapping[str, tuple[float, float, float]], now: float
                   ) -> dict[LimitClass, TokenBucket]:
    return {LimitClass(k): TokenBucket(rate, burst, tokens, now)
            for k, (rate, burst, tokens) in state.items()}


def export_meters(meters: Mapping[LimitClass, AbuseMeter], now: float
                  ) -> dict[str, tuple[int, float, list[float]]]:
    return {limit.value: (m.threshold, m.window, [now - t for t in m.rejections])
            for limit, m in meters.items()}


def import_meters(state: Mapping[str, tuple[int, float, list[float]]], now: float
                  ) -> dict[LimitClass, AbuseMeter]:
    return {LimitClass(k): AbuseMeter(threshold, window, deque(now - a for a in ages))
            for k, (threshold, window, ages) in state.items()}


def _identity_json(identity: Identity | None) -> dict[str, Any] | None:
    if identity is None:
        return None
    return {"sub": identity.sub, "name": identity.name, "rooms": list(identity.room_patterns),
            "exp": identity.expires_at, "token": identity.token}


def _identity(data: Any) -> Identity | None:
    if data is None:
        return None
    name = data["name"]
    return Identity(str(data["sub"]), None if name is None else str(name),
                    tuple(str(p) for p in data["rooms"]), float(data["exp"]),
                    str(data["token"]))


def _socket_json(socket: SocketState) -> dict[str, Any]:
    return {"nsp": socket.nsp, "sid": socket.sid, "identity": _identity_json(socket.identity),
            "rooms": socket.rooms, "pid": socket.pid, "durable": socket.durable,
            "data": socket.data, "offset": socket.offset, "typing": socket.typing}


def _socket(data: Any) -> SocketState:
    identity = _identity(data["identity"])
    if identity is None:
        raise BadState("a socket without an identity")
    pid, offset = data["pid"], data["offset"]
    return SocketState(str(data["nsp"]), str(data["sid"]), identity,
                       [str(r) for r in data["rooms"]], None if pid is None else str(pid),
                       bool(data["durable"]), data["data"],
                       None if offset is None else str(offset),
                       {str(k): float(v) for k, v in data["typing"].items()})


def _packet_json(packet: str | bytes) -> str | dict[str, str]:
    if isinstance(packet, bytes):
        return {"b": base64.b64encode(packet).decode()}
    return packet


def _packet(data: Any) -> str | bytes:
    if isinstance(data, str):
        return data
    return base64.b64decode(data["b"], validate=True)
