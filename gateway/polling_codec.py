"""Engine.IO v4 HTTP long-polling payloads, pure: bodies in and out, and frames back to packets.

Over polling, one HTTP body carries several Engine.IO packets joined by the record separator
``\\x1e``; a binary packet travels as ``b`` + standard base64. The rest of the gateway writes
ready-made WebSocket frames (the fan-out encodes a message once for every member), so a
polling session takes those frames back apart here: server frames are unmasked single frames,
their header says where each payload ends. Nothing here raises on input from the network.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import orjson

SEPARATOR = b"\x1e"
NOOP = "6"
CLOSE = "1"
_TEXT, _BINARY = 0x1, 0x2


@dataclass(frozen=True, slots=True)
class PollingError:
    """An Engine.IO error answer: HTTP ``status`` with ``{"code", "message"}``."""

    status: int
    code: int
    message: str

    def body(self) -> bytes:
        return orjson.dumps({"code": self.code, "message": self.message})


UNKNOWN_TRANSPORT = PollingError(400, 0, "Transport unknown")
UNKNOWN_SID = PollingError(400, 1, "Session ID unknown")
BAD_HANDSHAKE_METHOD = PollingError(400, 2, "Bad handshake method")
BAD_REQUEST = PollingError(400, 3, "Bad request")
FORBIDDEN = PollingError(403, 4, "Forbidden")


def encode_payload(packets: list[str | bytes]) -> bytes:
    """One GET body: text packets as they are, binary ones as ``b<base64>``."""
    return SEPARATOR.join(
        b"b" + base64.b64encode(packet) if isinstance(packet, bytes) else packet.encode()
        for packet in packets)


def decode_payload(body: bytes) -> list[str | bytes] | None:
    """The packets of one POST body, ``None`` when it is not a valid payload (not UTF-8, an
    empty packet, bad base64). Binary packets come back as ``bytes``."""
    if not body:
        return None
    packets: list[str | bytes] = []
    for raw in body.split(SEPARATOR):
        if not raw:
            return None
        if raw[:1] == b"b":
            try:
                packets.append(base64.b64decode(raw[1:], validate=True))
            except (binascii.Error, ValueError):
                return None
            continue
        try:
            packets.append(raw.decode())
        except UnicodeDecodeError:
            return None
    return packets


def unframe(data: bytes) -> tuple[list[str | bytes], bool]:
    """The messages inside server-written WebSocket frames, and whether a close frame was
    among them (nothing after it counts). Text payloads are Engine.IO packets; binary ones
    are Socket.IO attachments."""
    messages: list[str | bytes] = []
    view = memoryview(data)
    at, end = 0, len(data)
    while at + 2 <= end:
        opcode, size = view[at] & 0x0F, view[at + 1] & 0x7F
        at += 2
        if size == 126:
            size = int.from_bytes(view[at:at + 2], "big")
            at += 2
        elif size == 127:
            size = int.from_bytes(view[at:at + 8], "big")
            at += 8
        payload = bytes(view[at:at + size])
        at += size
        if opcode == _TEXT:
            messages.append(payload.decode())
        elif opcode == _BINARY:
            messages.append(payload)
        elif opcode == 0x8:
            return messages, True
    return messages, False
