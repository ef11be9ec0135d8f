"""The hook wire contract as a worker sees it: subjects, request bodies, ``$bin``, JSON.

Pure: bytes in, typed requests out; reply objects in, bytes out. The gateway sends a connect
request to ``<prefix>.hook.<ns>.connect`` and an event request to
``<prefix>.hook.<ns>.event.<event>``, where ``<ns>`` and ``<event>`` are tokens of the one
reversible encoding (:func:`shared.protocol.names.encode_token`: bytes outside
``[A-Za-z0-9_-]`` become ``=HH``, ``order:place`` -> ``order=3Aplace``); the namespace's token
is the namespace table's (``/orders`` -> ``orders``, ``/`` -> ``root``). Binary values travel
as ``{"$bin": "<standard base64>"}`` and are ``bytes`` on this side of the wire.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

import orjson

from shared.namespaces import NamespaceSpec
from shared.protocol.errors import error_body
from shared.protocol.names import encode_token

QUEUE = "hooks"
"""The queue group every worker of every language subscribes with, so replicas share the
load and each request is answered by one of them."""

NAMESPACE_RE = re.compile(r"/(?:[A-Za-z0-9_-]{1,64})?")
BIN_KEY = "$bin"


class WireError(ValueError):
    """A request body that does not follow the contract (answered ``bad_request``)."""


def check_namespace(nsp: str) -> str:
    """``nsp`` if it is a namespace name the contract allows (``/`` or ``/<1-64 of
    [A-Za-z0-9_-]>``), else ``ValueError``."""
    if not isinstance(nsp, str) or NAMESPACE_RE.fullmatch(nsp) is None:
        raise ValueError(f"{nsp!r} is not a namespace name (/ and 1-64 of [A-Za-z0-9_-])")
    return nsp


def namespace_token(nsp: str) -> str:
    """The namespace's subject token, exactly as the gateway's namespace table makes it."""
    return NamespaceSpec(check_namespace(nsp)).token


def connect_subject(prefix: str, nsp: str) -> str:
    return f"{prefix}.hook.{namespace_token(nsp)}.connect"


def event_subject(prefix: str, nsp: str, event: str) -> str:
    return f"{prefix}.hook.{namespace_token(nsp)}.event.{encode_token(event)}"


def event_wildcard(prefix: str, nsp: str) -> str:
    """Every event of a namespace: one subscription, so unknown events get an answer too."""
    return f"{prefix}.hook.{namespace_token(nsp)}.event.*"


# --- binary values and JSON -----------------------------------------------------------------


def _encode_binary(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {BIN_KEY: base64.b64encode(bytes(value)).decode("ascii")}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """Compact JSON with ``bytes`` written as ``{"$bin": base64}`` (tuples become lists);
    ``TypeError`` for anything else JSON cannot carry."""
    return orjson.dumps(value, default=_encode_binary)


def decode_binary(value: Any) -> Any:
    """``value`` with every ``{"$bin": str}`` object replaced by its bytes; ``WireError`` for
    a ``$bin`` that is not standard base64."""
    if isinstance(value, list):
        return [decode_binary(item) for item in value]
    if isinstance(value, dict):
        if len(value) == 1 and BIN_KEY in value and isinstance(value[BIN_KEY], str):
            try:
                return base64.b64decode(value[BIN_KEY], validate=True)
            except binascii.Error:
                raise WireError("a $bin value is not standard base64") from None
        return {key: decode_binary(item) for key, item in value.items()}
    return value


def loads(raw: bytes) -> dict[str, Any]:
    """A request body: a JSON object, binary values decoded."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise WireError("the request is not JSON") from None
    if not isinstance(body, dict):
        raise WireError("the request is not a JSON object")
    decoded: dict[str, Any] = decode_binary(body)
    return decoded


# --- requests -------------------------------------------------------------------------------


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any) -> Any:
    """``body[name]``, ``default`` when absent or null, ``WireError`` when of another type."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise WireError(f"{name!r} has the wrong type")
    return value


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    """A socket asks to connect: ``user``/``claims`` from a verified token (or ``None``),
    ``auth`` the CONNECT payload without the token, ``headers`` the allow-listed upgrade
    headers, ``gateway`` the gateway that holds the socket."""

    nsp: str
    sid: str
    id: str
    user: str | None
    claims: dict[str, Any] | None
    auth: dict[str, Any]
    headers: dict[str, Any]
    gateway: str


@dataclass(frozen=True, slots=True)
class EventRequest:
    """A client event: ``args`` its arguments, ``ack`` whether the client waits for an ack,
    ``id`` the idempotency key (``<user>:<key>`` when the first argument carries an ``id``),
    ``data`` the session's data from the connect reply or a later event reply."""

    nsp: str
    event: str
    args: list[Any]
    ack: bool
    sid: str
    id: str
    user: str | None
    data: Any
    gateway: str


def parse_connect(raw: bytes) -> ConnectRequest:
    body = loads(raw)
    return ConnectRequest(
        nsp=_field(body, "nsp", str, ""),
        sid=_field(body, "sid", str, ""),
        id=_field(body, "id", str, ""),
        user=_field(body, "user", str, None),
        claims=_field(body, "claims", dict, None),
        auth=_field(body, "auth", dict, {}),
        headers=_field(body, "headers", dict, {}),
        gateway=_field(body, "gateway", str, ""),
    )


def parse_event(raw: bytes) -> EventRequest:
    body = loads(raw)
    event = _field(body, "event", str, "")
    if not event:
        raise WireError("'event' is missing")
    return EventRequest(
        nsp=_field(body, "nsp", str, ""),
        event=event,
        args=_field(body, "args", list, []),
        ack=_field(body, "ack", bool, False),
        sid=_field(body, "sid", str, ""),
        id=_field(body, "id", str, ""),
        user=_field(body, "user", str, None),
        data=body.get("data"),
        gateway=_field(body, "gateway", str, ""),
    )


# --- replies --------------------------------------------------------------------------------


def error_reply(code: str, message: str, data: Any = None) -> dict[str, Any]:
    """``{ok: false, error: {code, message, data?}}``: the client's ack, code unchanged."""
    error = error_body(code, message)
    if data is not None:
        error["data"] = data
    return {"ok": False, "error": error}


def refusal(message: str, data: Any = None) -> dict[str, Any]:
    """``{ok: false, error: {message, data?}}``: the socket gets CONNECT_ERROR
    ``{message, data}``, which socket.io-client does not retry."""
    error: dict[str, Any] = {"message": message}
    if data is not None:
        error["data"] = data
    return {"ok": False, "error": error}
