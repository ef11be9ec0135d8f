"""Every frame the gateway answers a client with: acks, error answers, CONNECT replies and
refusals. One encoding each, so the session core builds every answer the same way.

An error answer is an ack when the client asked for one, else a ``request:error`` event
(not ``error``, which Socket.IO ports use for their own events).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from gateway.actions import AckTo, Action, Failed, NamespaceSocket, SendBinary, SendText
from shared import envelope
from shared.protocol.errors import ErrorCode, error_ack, error_body
from shared.protocol.events import REQUEST_ERROR
from shared.protocol.packets import Packet, PacketType, encode_packet, reconstruct
from shared.room_log.paging import Page


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


def ack_args(reply: AckTo, args: list[Any]) -> list[Action]:
    """An ACK with any arguments (an application's answer; ``bytes`` go as attachments),
    or nothing when the client asked for no ack."""
    if reply.id is None:
        return []
    text, attachments = encode_packet(Packet(PacketType.ACK, reply.nsp, args, reply.id))
    return [SendText("4" + text), *(SendBinary(blob) for blob in attachments)]


def emit_frames(nsp: str, args: list[Any]) -> list[Action]:
    """An EVENT ``[event, ...args]`` to this socket only (binary values as attachments)."""
    text, attachments = encode_packet(Packet(PacketType.EVENT, nsp, args))
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


def failed(reply: AckTo, event: str | None, failure: Failure) -> list[Action]:
    """A request that failed once its I/O was done: counted, and answered."""
    return [Failed(reply.nsp, failure.code.value), answer_failure(reply, event, failure)]


IO_RETRY_AFTER_MS = 1000


def io_failed(reply: AckTo, event: str | None, code: ErrorCode, message: str) -> list[Action]:
    """A request whose I/O failed (the bus, the log or a service did not answer): worth a
    retry, so the answer carries a hint."""
    return failed(reply, event, Failure(code, message, IO_RETRY_AFTER_MS))


def connect_error(nsp: str, body: dict[str, Any]) -> SendText:
    text, _ = encode_packet(Packet(PacketType.CONNECT_ERROR, nsp, body))
    return SendText("4" + text)


def history_answer(page: Page) -> dict[str, Any]:
    """``room:history``'s ack: each logged message's payload with its ``seq`` and ``prev``
    (a body that does not decode is left out), and whether the log reached back that far."""
    messages = [{**payload, "seq": seq, "prev": prev} for seq, prev, body in page.messages
                if (payload := _logged_payload(body)) is not None]
    return {"ok": True, "messages": messages, "complete": page.complete}


def _logged_payload(body: bytes) -> dict[str, Any] | None:
    """The event payload of a logged body (attachments put back as bytes)."""
    unpacked = envelope.unpack(body)
    if unpacked is None:
        return None
    args, attachments = unpacked
    try:
        data = orjson.loads(args)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, list) or len(data) < 2 or not isinstance(data[1], dict):
        return None
    payload: dict[str, Any] = data[1]
    if attachments:
        try:
            payload = reconstruct(payload, list(attachments))
        except ValueError:
            return None
    return payload
