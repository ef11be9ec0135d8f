"""Every frame the gateway answers a client with: acks, error answers, CONNECT replies and
refusals. One encoding each, so the session core builds every answer the same way.

An error answer is an ack when the client asked for one, else a ``request:error`` event
(not ``error``, which Socket.IO ports use for their own events).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.actions import AckTo, Action, Failed, NamespaceSocket, SendBinary, SendText
from shared.protocol.errors import ErrorCode, error_ack, error_body
from shared.protocol.events import REQUEST_ERROR
from shared.protocol.packets import Packet, PacketType, encode_packet


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed request: the event's error answer."""

    code: ErrorCode
    message: str
    retry_after_ms: int | None = None


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
