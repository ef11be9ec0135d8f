"""The server API's requests, validated: pure functions from decoded JSON to a typed request
or a :class:`~router.answers.Failure`.

Both front doors (HTTP and NATS) decode their input to the same ``(operation, body, user)``
triple and call :func:`parse` with the router's loaded namespace table (declared namespaces
are served like the built-in ones); nothing here raises on bad input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import orjson

from router.answers import Failure, bad_request, too_large
from router.socket_emit import EmitToSocket, parse_emit
from shared.namespaces import BUILT_IN, DEFAULT_PRESENCE_NAMESPACE, NamespaceTable
from shared.protocol.events import RESERVED
from shared.room_log import api_message_id
from shared.subjects import is_valid_room_name, is_valid_sub, user_room

EVENT_RE = re.compile(r"[A-Za-z0-9_:@-]{1,64}")
IDEMPOTENCY_ID_RE = re.compile(r"[A-Za-z0-9_:@.-]{1,64}")
DATA_MAX_BYTES = 64 * 1024
REASON_MAX = 256
OPERATIONS = ("publish", "send", "connections", "kick", "presence", "emit")


@dataclass(frozen=True, slots=True)
class Publish:
    """Publish ``body`` (the encoded ``[event, data]``) to a room of a namespace; ``logged``
    when the namespace is durable in the table it was parsed against."""

    namespace: str
    room: str
    body: bytes
    msg_id: str | None
    logged: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class Send:
    """Publish to the user's own room, then report how many of their connections hold it."""

    user: str
    publish: Publish


@dataclass(frozen=True, slots=True)
class ListConnections:
    user: str


@dataclass(frozen=True, slots=True)
class Kick:
    user: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class RoomPresence:
    """Who is in a room of a namespace, as the presence service sees it."""

    namespace: str
    room: str


Request = Publish | Send | ListConnections | Kick | RoomPresence | EmitToSocket


def decode_json(raw: bytes) -> object | Failure:
    """The JSON document in ``raw``, or a ``bad_request`` failure."""
    try:
        value: object = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return bad_request("the body is not valid JSON")
    return value


def is_namespace(value: object, namespaces: NamespaceTable = BUILT_IN) -> bool:
    """A namespace of the table (and never a ``TypeError`` for an unhashable value)."""
    return isinstance(value, str) and value in namespaces


def parse(operation: str, body: object, user: object = None,
          namespaces: NamespaceTable = BUILT_IN) -> Request | Failure:
    """Validate one API call. ``user`` is the path's user (HTTP) or the body's (NATS);
    ``presence`` reads its room and namespace from the body (HTTP: path and query)."""
    if operation == "kick" and body is None:
        body = {}
    if not isinstance(body, dict):
        return bad_request("the body must be a JSON object")
    if operation == "publish":
        room = body.get("room")
        if not is_valid_room_name(room):
            return bad_request("room must be 1-128 characters of [A-Za-z0-9_:@-]")
        assert isinstance(room, str)
        return _publish(body, room, namespaces)
    if operation == "presence":
        return _room_presence(body, namespaces)
    if operation == "emit":
        return parse_emit(body)
    if operation not in OPERATIONS:
        return Failure(404, "not_found", f"no operation {operation!r}")
    if not is_valid_sub(user):
        return bad_request("user must be a string of 1-128 characters")
    assert isinstance(user, str)
    if operation == "send":
        publish = _publish(body, user_room(user), namespaces)
        return publish if isinstance(publish, Failure) else Send(user, publish)
    if operation == "connections":
        return ListConnections(user)
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > REASON_MAX):
        return bad_request(f"reason must be a string of at most {REASON_MAX} characters")
    return Kick(user, reason)


def _namespace_failure(namespaces: NamespaceTable) -> Failure:
    return bad_request("namespace must be one of " + ", ".join(sorted(namespaces)))


def _room_presence(body: dict[str, object],
                   namespaces: NamespaceTable) -> RoomPresence | Failure:
    room = body.get("room")
    if not is_valid_room_name(room):
        return bad_request("room must be 1-128 characters of [A-Za-z0-9_:@-]")
    namespace = body.get("namespace", DEFAULT_PRESENCE_NAMESPACE)  # absent only: null is refused
    if not is_namespace(namespace, namespaces):
        return _namespace_failure(namespaces)
    assert isinstance(room, str) and isinstance(namespace, str)
    return RoomPresence(namespace, room)


def _publish(body: dict[str, object], room: str,
             namespaces: NamespaceTable) -> Publish | Failure:
    namespace = body.get("namespace")
    if not is_namespace(namespace, namespaces):
        return _namespace_failure(namespaces)
    assert isinstance(namespace, str)
    event = body.get("event")
    if not isinstance(event, str) or not EVENT_RE.fullmatch(event) or event in RESERVED:
        return bad_request("event must be 1-64 characters of [A-Za-z0-9_:@-] and not one "
                           "Socket.IO reserves")
    data = body.get("data")
    if not isinstance(data, dict):
        return bad_request("data must be a JSON object")
    try:
        encoded = orjson.dumps(data)
    except TypeError:  # nested past orjson's write limit (254 levels; it reads 1024)
        return bad_request("data is not encodable JSON (nested too deeply?)")
    if len(encoded) > DATA_MAX_BYTES:
        return too_large(f"data is over {DATA_MAX_BYTES} bytes encoded")
    key = body.get("id")
    if key is not None and (not isinstance(key, str) or not IDEMPOTENCY_ID_RE.fullmatch(key)):
        return bad_request("id must be 1-64 characters of [A-Za-z0-9_:@.-]")
    msg_id = None if key is None else api_message_id(room, key)
    return Publish(namespace, room, b'["%s",%s]' % (event.encode(), encoded), msg_id,
                   namespace in namespaces.durable)
