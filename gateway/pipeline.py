"""The types a namespace's middleware chains are made of.

A CONNECT runs the namespace's connect chain; an EVENT runs its event chain (rate limit,
known event, schema) and then the event's handler. Every link is a plain function of a
context, so chains are declared as data in :mod:`gateway.namespaces` and tested by calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from gateway.actions import AckTo, Action, Failed, NamespaceSocket, SendBinary, SendText
from shared.jwtauth import Identity, TokenVerifier
from shared.presence_wire import TYPING_REFRESH_S
from shared.protocol.errors import ErrorCode, error_ack, error_body
from shared.protocol.events import REQUEST_ERROR
from shared.protocol.packets import Packet, PacketType, encode_packet
from shared.ratelimit import TokenBucket


class LimitClass(Enum):
    CHAT = "chat"
    REQUEST = "request"


@dataclass(frozen=True, slots=True)
class Limits:
    chat_rate: float = 100.0
    chat_burst: int = 100
    request_rate: float = 10.0
    request_burst: int = 20
    attachment_max_bytes: int = 262_144
    max_rooms: int = 100
    abuse_factor: float = 10.0
    typing_coalesce_s: float = TYPING_REFRESH_S


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused CONNECT: becomes CONNECT_ERROR ``{message, data: {code}}``."""

    message: str
    code: str


@dataclass(slots=True)
class ConnectContext:
    nsp: str
    auth: dict[str, Any]
    upgrade_identity: Identity | None
    verifier: TokenVerifier
    identity: Identity | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed request: the event's error answer."""

    code: ErrorCode
    message: str
    retry_after_ms: int | None = None


@dataclass(slots=True)
class EventContext:
    socket: NamespaceSocket
    event: str
    args: list[Any]
    reply: AckTo
    now: float
    limits: Limits
    buckets: dict[LimitClass, TokenBucket]
    wall_clock: Callable[[], float]
    """Unix seconds, for the ``ts`` a message carries (``now`` is the monotonic clock)."""

    @property
    def payload(self) -> Any:
        return self.args[0] if self.args else None


ConnectMiddleware = Callable[[ConnectContext], Refusal | None]
EventMiddleware = Callable[[EventContext, "EventSpec | None"], Failure | None]
Handler = Callable[[EventContext], "list[Action] | Failure"]
Validator = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class EventSpec:
    handler: Handler
    limit: LimitClass
    validate: Validator | None = None


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    durable: bool
    connect_chain: tuple[ConnectMiddleware, ...]
    event_chain: tuple[EventMiddleware, ...]
    events: Mapping[str, EventSpec] = field(default_factory=dict)


def ack_frames(reply: AckTo, body: dict[str, Any]) -> list[SendText | SendBinary]:
    """An ACK; one with binary values is a BINARY_ACK followed by its attachment frames."""
    text, attachments = encode_packet(Packet(PacketType.ACK, reply.nsp, [body], reply.id))
    return [SendText("4" + text), *(SendBinary(blob) for blob in attachments)]


def acknowledge(reply: AckTo, body: dict[str, Any]) -> list[Action]:
    """The ack frames for ``body``, or none when the client asked for no ack."""
    return [*ack_frames(reply, body)] if reply.id is not None else []


def _ack_text(reply: AckTo, body: dict[str, Any]) -> SendText:
    """An ACK whose body holds no binary: one text frame."""
    frame = ack_frames(reply, body)[0]
    assert isinstance(frame, SendText)
    return frame


def event_frame(nsp: str, event: str, body: dict[str, Any]) -> SendText:
    text, _ = encode_packet(Packet(PacketType.EVENT, nsp, [event, body]))
    return SendText("4" + text)


def answer_failure(reply: AckTo, event: str | None, failure: Failure) -> SendText:
    """An error ack when the client asked for one, else a ``request:error`` event."""
    if reply.id is not None:
        return _ack_text(reply, error_ack(failure.code, failure.message, failure.retry_after_ms))
    body = error_body(failure.code, failure.message, failure.retry_after_ms)
    if event is not None:
        body["event"] = event
    return event_frame(reply.nsp, REQUEST_ERROR, body)


def connect_reply(socket: NamespaceSocket) -> str:
    """The CONNECT reply: always ``sid``; ``pid`` when the socket can recover."""
    body = {"sid": socket.sid} if socket.pid is None else {"sid": socket.sid, "pid": socket.pid}
    text, _ = encode_packet(Packet(PacketType.CONNECT, socket.nsp, body))
    return "4" + text


def too_many_connections(nsp: str) -> SendText:
    """The per-user limit's refusal: a CONNECT_ERROR, which socket.io-client does not retry."""
    return connect_error(nsp, {"message": "too many connections",
                                "data": {"code": "too_many_connections"}})


def io_failed(reply: AckTo, event: str | None, code: ErrorCode, message: str) -> list[Action]:
    """A request whose I/O failed: counted, and answered with a retry hint."""
    return [Failed(reply.nsp, code.value), answer_failure(reply, event, Failure(code, message,
                                                                                 1000))]


def connect_error(nsp: str, body: dict[str, Any]) -> SendText:
    text, _ = encode_packet(Packet(PacketType.CONNECT_ERROR, nsp, body))
    return SendText("4" + text)
