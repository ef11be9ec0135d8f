"""What gateways tell the presence service: JSON notices, several packed into one work-queue
message (a JSON array, in the order they were taken; a lone object is read as a pack of one).

A gateway never sends "joined room X" deltas. It sends the whole current record of one socket
(user, rooms, alive) with a per-socket sequence number, so records are idempotent and commute:
a replica that sees an older record after a newer one keeps the newer, a redelivered record
changes nothing, and a gateway may coalesce any number of changes into one record. A socket
that opened and closed before its first record went out is never sent at all.

``boot`` names one run of a gateway process: a gateway restarted under the same id (SIGKILL,
then a quick restart that keeps its liveness key alive) announces its new boot, and presence
closes every socket of the old one.

Rooms are keyed ``"<namespace> <room>"`` (a room name has no spaces), so one presence state
serves every namespace that has presence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeGuard

import orjson

from shared.protocol.names import is_valid_room_name, is_valid_sub

MAX_ROOMS = 1_000
TYPING_REFRESH_S = 2.0
"""A gateway forwards at most one ``typing:start`` per socket and room per this interval, so
a continuous typist refreshes presence's typing TTL this often; the TTL must be longer."""


@dataclass(frozen=True, slots=True)
class SocketRecord:
    gateway: str
    boot: str
    conn: str
    user: str
    rooms: frozenset[str]
    alive: bool
    seq: int
    stamp: float

    @property
    def instance(self) -> str:
        return instance_of(self.gateway, self.boot)


@dataclass(frozen=True, slots=True)
class TypingNotice:
    room: str
    user: str
    active: bool
    stamp: float


@dataclass(frozen=True, slots=True)
class GatewayBoot:
    gateway: str
    boot: str
    stamp: float


Notice = SocketRecord | TypingNotice | GatewayBoot


def instance_of(gateway: str, boot: str) -> str:
    """One gateway run, as the presence state's gateway key."""
    return f"{gateway}/{boot}"


def room_key(nsp: str, room: str) -> str:
    return f"{nsp} {room}"


def split_room_key(key: str) -> tuple[str, str] | None:
    nsp, sep, room = key.partition(" ")
    if not sep or not nsp.startswith("/") or not is_valid_room_name(room):
        return None
    return nsp, room


def encode(notice: Notice) -> bytes:
    if isinstance(notice, SocketRecord):
        return orjson.dumps({"t": "socket", "gw": notice.gateway, "boot": notice.boot,
                             "conn": notice.conn, "user": notice.user,
                             "rooms": sorted(notice.rooms), "alive": notice.alive,
                             "seq": notice.seq, "stamp": notice.stamp})
    if isinstance(notice, TypingNotice):
        return orjson.dumps({"t": "typing", "room": notice.room, "user": notice.user,
                             "active": notice.active, "stamp": notice.stamp})
    return orjson.dumps({"t": "boot", "gw": notice.gateway, "boot": notice.boot,
                         "stamp": notice.stamp})


def pack(encoded: list[bytes]) -> bytes:
    """One work-queue message from notices already :func:`encode`-d."""
    return b"[" + b",".join(encoded) + b"]"


def decode(raw: bytes) -> Notice | None:
    """The notice in ``raw``, or ``None`` for anything malformed (never raises)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return _notice(data)


def unpack(raw: bytes) -> list[Notice | None]:
    """The notices of one work-queue message, ``None`` for each malformed one (never
    raises): a pack, or a lone notice as gateways sent them before packing."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return [None]
    if isinstance(data, list):
        return [_notice(item) for item in data]
    return [_notice(data)]


def _notice(data: object) -> Notice | None:
    if not isinstance(data, dict):
        return None
    kind = data.get("t")
    stamp = data.get("stamp")
    if not isinstance(stamp, (int, float)) or isinstance(stamp, bool):
        return None
    if kind == "socket":
        return _socket(data, float(stamp))
    if kind == "typing":
        room, user, active = data.get("room"), data.get("user"), data.get("active")
        if (isinstance(room, str) and split_room_key(room) is not None and is_valid_sub(user)
                and isinstance(active, bool)):
            assert isinstance(user, str)
            return TypingNotice(room, user, active, float(stamp))
        return None
    if kind == "boot":
        gateway, boot = data.get("gw"), data.get("boot")
        if _name(gateway) and _name(boot):
            return GatewayBoot(gateway, boot, float(stamp))
    return None


def _socket(data: dict[str, Any], stamp: float) -> SocketRecord | None:
    gateway, boot, conn, user = data.get("gw"), data.get("boot"), data.get("conn"), data.get("user")
    rooms, alive, seq = data.get("rooms"), data.get("alive"), data.get("seq")
    if not (_name(gateway) and _name(boot) and _name(conn) and is_valid_sub(user)):
        return None
    assert isinstance(user, str)
    if not isinstance(alive, bool) or not isinstance(seq, int) or isinstance(seq, bool):
        return None
    if not isinstance(rooms, list) or len(rooms) > MAX_ROOMS:
        return None
    if not all(isinstance(room, str) and split_room_key(room) is not None for room in rooms):
        return None
    return SocketRecord(gateway, boot, conn, user, frozenset(rooms), alive, seq, stamp)


def _name(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and 0 < len(value) <= 128 and "/" not in value
