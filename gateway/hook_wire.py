"""The hook wire contract as data: request bodies out, replies in, binary as ``{"$bin": …}``.

DESIGN.md's "Application namespaces and handlers" fixes the bodies. Everything here is pure:
a reply is parsed into a typed plan (:class:`EventPlan`, :class:`ConnectPlan`) or an
:class:`AppError` (the application refused), and anything a reply gets wrong is a
:class:`Malformed` naming the field, so a worker's bug becomes an ``internal`` answer, never
an exception in the gateway.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

from shared.protocol.events import RESERVED
from shared.protocol.names import is_valid_room_name, is_valid_sub

BIN = "$bin"
KEY_MAX = 64
EVENT_NAME_MAX = 128
_MAX_DEPTH = 64


@dataclass(frozen=True, slots=True)
class Malformed:
    """A reply the contract does not allow; ``detail`` names what was wrong."""

    detail: str


@dataclass(frozen=True, slots=True)
class AppError:
    """The application's own refusal, passed on unchanged."""

    code: str
    message: str
    data: Any = None
    has_data: bool = False

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.has_data:
            error["data"] = self.data
        return {"ok": False, "error": error}


@dataclass(frozen=True, slots=True)
class Publish:
    room: str
    event: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EventPlan:
    """An accepted event reply; ``data`` is set only when ``replace_data``."""

    ack: list[Any]
    emit: list[list[Any]]
    join: list[str]
    leave: list[str]
    publish: list[Publish]
    disconnect: bool
    replace_data: bool = False
    data: Any = None


@dataclass(frozen=True, slots=True)
class ConnectPlan:
    user: str | None
    rooms: tuple[str, ...] | None
    join: list[str]
    emit: list[list[Any]]
    data: Any = None


# --- binary: bytes <-> {"$bin": base64} --------------------------------------------------


def to_wire(value: Any) -> Any:
    """Client values for a request body: every ``bytes`` becomes ``{"$bin": base64}``."""
    if isinstance(value, bytes | bytearray | memoryview):
        return {BIN: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, list):
        return [to_wire(item) for item in value]
    if isinstance(value, dict):
        return {key: to_wire(item) for key, item in value.items()}
    return value


def from_wire(value: Any, depth: int = 0) -> Any:
    """A reply's values for the client: ``{"$bin": base64}`` becomes ``bytes`` (sent as a
    Socket.IO binary packet). Raises ``ValueError`` on bad base64."""
    if depth > _MAX_DEPTH and isinstance(value, dict | list):
        raise ValueError("nested too deep")
    if isinstance(value, dict):
        if len(value) == 1 and BIN in value:
            encoded = value[BIN]
            if not isinstance(encoded, str):
                raise ValueError("$bin must be a base64 string")
            try:
                return base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("$bin is not standard base64 with padding") from None
        return {key: from_wire(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [from_wire(item, depth + 1) for item in value]
    return value


# --- requests ---------------------------------------------------------------------------


def idempotency_id(user: str, args: list[Any], fallback: str) -> str:
    """``<user>:<key>`` when the first argument carries a string ``id`` of 1-64 characters
    (the SDK's retries reuse it), else ``fallback``, unique per packet (it holds no ``:``,
    so it never equals a keyed id)."""
    first = args[0] if args else None
    if isinstance(first, dict):
        key = first.get("id")
        if isinstance(key, str) and 0 < len(key) <= KEY_MAX:
            return f"{user}:{key}"
    return fallback


def event_request(nsp: str, event: str, args: list[Any], ack: bool, sid: str, request_id: str,
                  user: str, data: Any, gateway: str) -> bytes:
    """The event request body; ``TypeError`` if it cannot be encoded (nested too deep)."""
    return orjson.dumps({"nsp": nsp, "event": event, "args": to_wire(args), "ack": ack,
                         "sid": sid, "id": request_id, "user": user, "data": data,
                         "gateway": gateway})


def connect_request(nsp: str, sid: str, request_id: str, user: str | None,
                    claims: dict[str, Any] | None, auth: dict[str, Any],
                    headers: dict[str, str], gateway: str) -> bytes:
    """The connect request body; ``auth`` is the CONNECT payload without its token."""
    shown = {key: value for key, value in auth.items() if key != "token"}
    return orjson.dumps({"nsp": nsp, "sid": sid, "id": request_id, "user": user,
                         "claims": claims, "auth": to_wire(shown), "headers": headers,
                         "gateway": gateway})


# --- replies ----------------------------------------------------------------------------


def _decoded(raw: bytes) -> dict[str, Any] | Malformed:
    try:
        reply = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Malformed("reply is not JSON")
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        return Malformed("reply must be an object with a boolean ok")
    return reply


def _app_error(reply: dict[str, Any], need_code: bool) -> AppError | Malformed:
    error = reply.get("error")
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return Malformed("error must be an object with a string message")
    code = error.get("code", "refused")
    if not isinstance(code, str) or not code or (need_code and "code" not in error):
        return Malformed("error.code must be a non-empty string")
    try:
        data = from_wire(error.get("data"))
    except ValueError as exc:
        return Malformed(f"error.data: {exc}")
    return AppError(code, error["message"], data, "data" in error)


def _rooms(reply: dict[str, Any], key: str) -> list[str] | Malformed:
    rooms = reply.get(key, [])
    if not isinstance(rooms, list) or not all(is_valid_room_name(room) for room in rooms):
        return Malformed(f"{key} must be a list of room names (1-128 of [A-Za-z0-9_:@-])")
    return rooms


def _event_name(name: Any) -> bool:
    return (isinstance(name, str) and 0 < len(name) <= EVENT_NAME_MAX
            and name not in RESERVED)


def _emits(reply: dict[str, Any]) -> list[list[Any]] | Malformed:
    emit = reply.get("emit", [])
    if not isinstance(emit, list) or not all(
            isinstance(item, list) and item and _event_name(item[0]) for item in emit):
        return Malformed("emit must be a list of [event, ...args] with unreserved names")
    try:
        return [[item[0], *from_wire(item[1:])] for item in emit]
    except ValueError as exc:
        return Malformed(f"emit: {exc}")


def _publishes(reply: dict[str, Any]) -> list[Publish] | Malformed:
    items = reply.get("publish", [])
    found: list[Publish] = []
    for item in items if isinstance(items, list) else [None]:
        if not (isinstance(item, dict) and is_valid_room_name(item.get("room"))
                and _event_name(item.get("event")) and isinstance(item.get("data"), dict)):
            return Malformed("publish must be a list of {room, event, data: object}")
        try:
            found.append(Publish(item["room"], item["event"], from_wire(item["data"])))
        except ValueError as exc:
            return Malformed(f"publish: {exc}")
    return found


def event_reply(raw: bytes) -> EventPlan | AppError | Malformed:
    reply = _decoded(raw)
    if isinstance(reply, Malformed):
        return reply
    if not reply["ok"]:
        return _app_error(reply, need_code=True)
    ack = reply.get("ack", [])
    if not isinstance(ack, list):
        return Malformed("ack must be the list of the ack's arguments")
    try:
        ack = from_wire(ack)
    except ValueError as exc:
        return Malformed(f"ack: {exc}")
    disconnect = reply.get("disconnect", False)
    if not isinstance(disconnect, bool):
        return Malformed("disconnect must be a boolean")
    emit, join, leave = _emits(reply), _rooms(reply, "join"), _rooms(reply, "leave")
    publish = _publishes(reply)
    if isinstance(emit, Malformed):
        return emit
    if isinstance(join, Malformed):
        return join
    if isinstance(leave, Malformed):
        return leave
    if isinstance(publish, Malformed):
        return publish
    return EventPlan(ack, emit, join, leave, publish, disconnect, "data" in reply,
                     reply.get("data"))


def connect_reply(raw: bytes) -> ConnectPlan | AppError | Malformed:
    reply = _decoded(raw)
    if isinstance(reply, Malformed):
        return reply
    if not reply["ok"]:
        return _app_error(reply, need_code=False)
    user = reply.get("user")
    if user is not None and not is_valid_sub(user):
        return Malformed("user must be a string of 1-128 characters")
    rooms = reply.get("rooms")
    if rooms is not None and not (isinstance(rooms, list) and all(
            isinstance(pattern, str) and pattern for pattern in rooms)):
        return Malformed("rooms must be a list of room patterns")
    join, emit = _rooms(reply, "join"), _emits(reply)
    if isinstance(join, Malformed):
        return join
    if isinstance(emit, Malformed):
        return emit
    return ConnectPlan(user, None if rooms is None else tuple(rooms), join, emit,
                       reply.get("data"))
