"""Socket.IO v5 packet codec (the part inside an Engine.IO ``message``), pure and total.

Wire form: ``<type>[<attachments>-][<nsp>,][<ack id>][<JSON>]``, JSON compact as
``JSON.stringify`` writes it. :func:`parse_packet` never raises: bad input becomes an
:class:`InvalidPacket` naming what was wrong, which the session turns into an error answer or
a close. Binary packets carry placeholders ``{"_placeholder": true, "num": N}`` numbered in
depth-first order; :class:`BinaryAssembler` puts the attachment frames back in their place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import orjson

from shared.protocol.events import RESERVED

MAX_ATTACHMENTS = 10
MAX_ACK_ID_DIGITS = 15
MAX_NAMESPACE_LENGTH = 256
MAX_PLACEHOLDER_DEPTH = 32
MAX_PAYLOAD_DEPTH = 64  # deeper JSON than anyone's payload; orjson writes back at most ~254


class PacketType(IntEnum):
    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


@dataclass(frozen=True, slots=True)
class Packet:
    type: PacketType
    nsp: str = "/"
    data: Any = None
    id: int | None = None
    attachments: int = 0


@dataclass(frozen=True, slots=True)
class InvalidPacket:
    """Why a packet was refused, with its namespace and ack id when the header got that far
    (so a bad event that asked for an ack still gets one)."""

    detail: str
    nsp: str | None = None
    id: int | None = None


_DIGITS = frozenset("0123456789")


def parse_packet(text: str) -> Packet | InvalidPacket:
    """Decode one Socket.IO packet; never raises."""
    if not text or text[0] not in "0123456":
        return InvalidPacket("unknown packet type")
    kind = PacketType(int(text[0]))
    pos, attachments = 1, 0
    if kind in (PacketType.BINARY_EVENT, PacketType.BINARY_ACK):
        counted = _attachment_count(text)
        if isinstance(counted, InvalidPacket):
            return counted
        attachments, pos = counted
    nsp = "/"
    if pos < len(text) and text[pos] == "/":
        comma = text.find(",", pos)
        end = len(text) if comma < 0 else comma
        nsp = text[pos:end].split("?", 1)[0]
        if len(nsp) > MAX_NAMESPACE_LENGTH:
            return InvalidPacket("namespace too long")
        pos = end + 1
    start = pos
    while pos < len(text) and text[pos] in _DIGITS:
        pos += 1
    ack_id = None
    if pos > start:
        if pos - start > MAX_ACK_ID_DIGITS:
            return InvalidPacket("ack id too long", nsp)
        ack_id = int(text[start:pos])
    data = _payload(text[pos:], nsp, ack_id) if pos < len(text) else None
    if isinstance(data, InvalidPacket):
        return data
    problem = _payload_problem(kind, data, ack_id)
    if problem:
        return InvalidPacket(problem, nsp, ack_id)
    return Packet(kind, nsp, data, ack_id, attachments)


def _attachment_count(text: str) -> tuple[int, int] | InvalidPacket:
    """A binary packet's ``<count>-`` header: the count and where the rest starts."""
    dash = text.find("-", 1)
    count = text[1:dash] if dash > 0 else ""
    if not count or not set(count) <= _DIGITS or len(count) > 2:
        return InvalidPacket("bad attachment count")
    if int(count) > MAX_ATTACHMENTS:
        return InvalidPacket(f"more than {MAX_ATTACHMENTS} attachments")
    return int(count), dash + 1


def _payload(text: str, nsp: str, ack_id: int | None) -> Any:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return InvalidPacket("payload is not valid JSON", nsp, ack_id)
    if _too_deep(data):
        return InvalidPacket(f"payload nested deeper than {MAX_PAYLOAD_DEPTH}", nsp, ack_id)
    return data


def _too_deep(data: Any) -> bool:
    """Iterative, so no input can exhaust the stack."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: list[Any] = list(value.values())
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_PAYLOAD_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, dict | list))
    return False


def _payload_problem(kind: PacketType, data: Any, ack_id: int | None) -> str | None:
    if kind is PacketType.CONNECT:
        ok = data is None or isinstance(data, dict)
        return None if ok else "CONNECT payload must be an object"
    if kind is PacketType.DISCONNECT:
        return None if data is None else "DISCONNECT carries no payload"
    if kind is PacketType.CONNECT_ERROR:
        return "CONNECT_ERROR is server to client only"
    if kind in (PacketType.ACK, PacketType.BINARY_ACK):
        if ack_id is None:
            return "ACK without an id"
        return None if isinstance(data, list) else "ACK payload must be an array"
    if not isinstance(data, list) or not data:
        return "EVENT payload must be a non-empty array"
    name = data[0]
    if isinstance(name, str):
        return "reserved event name" if name in RESERVED else None
    if isinstance(name, int | float) and not isinstance(name, bool):
        return None
    return "event name must be a string or a number"


def encode_packet(packet: Packet) -> tuple[str, list[bytes]]:
    """Encode to the wire string and the attachment frames that must follow it."""
    attachments: list[bytes] = []
    data = packet.data
    kind = packet.type
    if data is not None and _has_binary(data):
        data = deconstruct(data, attachments)
        if kind is PacketType.EVENT:
            kind = PacketType.BINARY_EVENT
        elif kind is PacketType.ACK:
            kind = PacketType.BINARY_ACK
    parts = [str(int(kind))]
    if kind in (PacketType.BINARY_EVENT, PacketType.BINARY_ACK):
        parts.append(f"{len(attachments)}-")
    if packet.nsp != "/":
        parts.append(packet.nsp + ",")
    if packet.id is not None:
        parts.append(str(packet.id))
    if data is not None:
        parts.append(orjson.dumps(data).decode())
    return "".join(parts), attachments


def _has_binary(value: Any) -> bool:
    if isinstance(value, bytes | bytearray | memoryview):
        return True
    if isinstance(value, list | tuple):
        return any(_has_binary(item) for item in value)
    if isinstance(value, dict):
        return any(_has_binary(item) for item in value.values())
    return False


def deconstruct(value: Any, out: list[bytes]) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        out.append(bytes(value))
        return {"_placeholder": True, "num": len(out) - 1}
    if isinstance(value, list | tuple):
        return [deconstruct(item, out) for item in value]
    if isinstance(value, dict):
        return {key: deconstruct(item, out) for key, item in value.items()}
    return value


def _reconstruct(value: Any, buffers: list[bytes], depth: int = 0) -> Any:
    if depth > MAX_PLACEHOLDER_DEPTH and isinstance(value, dict | list):
        raise ValueError("binary packet nested too deep")
    if isinstance(value, dict):
        if value.get("_placeholder") is True and set(value) == {"_placeholder", "num"}:
            num = value["num"]
            if type(num) is not int or not 0 <= num < len(buffers):
                raise ValueError("placeholder refers to a missing attachment")
            return buffers[num]
        return {key: _reconstruct(item, buffers, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_reconstruct(item, buffers, depth + 1) for item in value]
    return value


def reconstruct(value: Any, buffers: list[bytes]) -> Any:
    """Put attachments back where their placeholders are; ``ValueError`` if one is missing."""
    return _reconstruct(value, buffers)


class BinaryAssembler:
    """Collects the attachment frames that follow a binary packet on one connection.

    The frames must follow their header immediately; a text frame in between, or a binary
    frame with no header pending, is a protocol violation the caller closes the connection on.
    """

    __slots__ = ("_buffers", "_header")

    def __init__(self) -> None:
        self._header: Packet | None = None
        self._buffers: list[bytes] = []

    @property
    def pending(self) -> bool:
        return self._header is not None

    def start(self, header: Packet) -> Packet | InvalidPacket | None:
        """Begin collecting; a header that announces no attachments completes at once."""
        self._header, self._buffers = header, []
        return self._complete() if header.attachments == 0 else None

    def add(self, frame: bytes) -> Packet | InvalidPacket | None:
        """Add one attachment; returns the finished packet after the last one."""
        if self._header is None:
            return InvalidPacket("binary frame with no binary packet pending")
        self._buffers.append(frame)
        if len(self._buffers) < self._header.attachments:
            return None
        return self._complete()

    def _complete(self) -> Packet | InvalidPacket:
        header, buffers = self._header, self._buffers
        self._header, self._buffers = None, []
        assert header is not None
        try:
            data = _reconstruct(header.data, buffers)
        except ValueError as exc:
            return InvalidPacket(str(exc), header.nsp, header.id)
        plain = PacketType.EVENT if header.type is PacketType.BINARY_EVENT else PacketType.ACK
        return Packet(plain, header.nsp, data, header.id, header.attachments)
