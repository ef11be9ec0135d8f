"""RFC 6455 for the server side, as pure functions and a frame reader: bytes in, messages out.

The gateway writes its own frames (pre-built bytes, ``shared/protocol/frames.py``), so all it
needs from a WebSocket implementation is the opening handshake's checks and a reader for the
client's masked frames. A reader of a few slots costs far less memory per connection than a
general-purpose protocol object (websockets' ``ServerProtocol`` holds a generator-based parser,
a stream reader and event lists: ~1.9 KB before any frame), and it never raises on bad input:
it reports the close code the connection must end with (1002, 1007, 1009), as websockets'
``protocol.py`` does. Unmasking is websockets' C ``apply_mask``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

try:
    from websockets.speedups import apply_mask
except ImportError:  # a websockets build without its C extension
    from websockets.utils import apply_mask

from gateway.http import Request, Response, text_response
from shared.protocol.frames import ws_frame

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 1.3
CLOSE = 0x88
PONG = 0x8A
NO_STATUS = 1005  # RFC 6455 7.1.5: a close frame without a code
MAX_REASON_BYTES = 123  # a control frame's payload is at most 125 bytes, 2 hold the code
# Codes a peer may send (RFC 6455 7.4.1 and the IANA registry; websockets' EXTERNAL_CLOSE_CODES).
PEER_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013,
                              1014})


@dataclass(frozen=True, slots=True)
class Ping:
    payload: bytes


@dataclass(frozen=True, slots=True)
class CloseReceived:
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Failure:
    """The connection must be closed with ``code``; nothing after it can be read."""

    code: int
    reason: str


Event = str | bytes | Ping | CloseReceived | Failure


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def _tokens(request: Request, name: str) -> list[str]:
    return [token.strip().lower() for value in request.headers.get_all(name)
            for token in value.split(",")]


def check_upgrade(request: Request) -> str | Response:
    """The ``Sec-WebSocket-Accept`` value for a valid opening handshake (RFC 6455 4.2.1), or
    the refusal: 400 for a bad request, 426 when the client must change its upgrade."""
    if "websocket" not in _tokens(request, "Upgrade"):
        return text_response(400, "expected a WebSocket upgrade\n")
    if request.method != "GET" or request.http_version != "1.1":
        return text_response(400, "a WebSocket upgrade is a GET over HTTP/1.1\n")
    if "upgrade" not in _tokens(request, "Connection"):
        return text_response(426, "missing Connection: Upgrade\n",
                             (("Upgrade", "websocket"), ("Connection", "Upgrade")))
    versions = request.headers.get_all("Sec-WebSocket-Version")
    if versions != ["13"]:
        return text_response(426, "unsupported Sec-WebSocket-Version\n",
                             (("Sec-WebSocket-Version", "13"),))
    keys = request.headers.get_all("Sec-WebSocket-Key")
    try:
        valid = len(keys) == 1 and len(base64.b64decode(keys[0], validate=True)) == 16
    except binascii.Error:
        valid = False
    if not valid:
        return text_response(400, "invalid Sec-WebSocket-Key\n")
    return accept_key(keys[0])


def switching_protocols(accept: str) -> Response:
    return Response(101, headers=(("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                  ("Sec-WebSocket-Accept", accept)))


def close_frame(code: int, reason: str = "") -> bytes:
    """A server close frame; 1005 (the peer sent no code) is answered with an empty one."""
    if code == NO_STATUS:
        return ws_frame(b"", CLOSE)
    encoded = reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore").encode()
    return ws_frame(code.to_bytes(2, "big") + encoded, CLOSE)


def pong_frame(payload: bytes) -> bytes:
    return ws_frame(payload, PONG)


class FrameReader:
    """Client frames to messages: text (checked UTF-8) and binary, reassembled from fragments;
    pings, the peer's close and failures as events; pongs are dropped (the gateway never
    pings at the WebSocket level: Engine.IO has its own heartbeat)."""

    __slots__ = ("_buffer", "_fragments", "_max", "_opcode", "_size", "done")

    def __init__(self, max_size: int) -> None:
        self._max = max_size
        self._buffer = b""
        self._fragments: list[bytes] | None = None
        self._opcode = 0
        self._size = 0
        self.done = False

    def feed(self, data: bytes) -> list[Event]:
        if self.done:
            return []
        buffer = self._buffer + data if self._buffer else data
        view = memoryview(buffer)
        events: list[Event] = []
        pos, end = 0, len(buffer)
        while end - pos >= 2 and not self.done:
            first, second = buffer[pos], buffer[pos + 1]
            length, head = second & 0x7F, pos + 2
            if length == 126:
                if end - pos < 4:
                    break
                length, head = int.from_bytes(view[pos + 2:pos + 4]), pos + 4
            elif length == 127:
                if end - pos < 10:
                    break
                length, head = int.from_bytes(view[pos + 2:pos + 10]), pos + 10
            problem = self._check(first, second, length)
            if problem is not None:
                events.append(self._fail(*problem))
                break
            stop = head + 4 + length
            if stop > end:
                break
            payload = apply_mask(view[head + 4:stop], buffer[head:head + 4])
            pos = stop
            event = self._frame(first & 0x0F, bool(first & 0x80), payload)
            if event is not None:
                events.append(event)
        view.release()
        self._buffer = b"" if self.done or pos == end else bytes(buffer[pos:])
        return events

    def _check(self, first: int, second: int, length: int) -> tuple[int, str] | None:
        """What is wrong with a frame, known from its header alone (so an oversize frame is
        refused before its payload arrives)."""
        opcode = first & 0x0F
        if first & 0x70:
            return 1002, "reserved bits must be 0"
        if not second & 0x80:
            return 1002, "client frames must be masked"
        if opcode >= 8:
            if opcode not in (8, 9, 10):
                return 1002, f"invalid opcode {opcode}"
            if not first & 0x80:
                return 1002, "fragmented control frame"
            if length > 125:
                return 1002, "control frame too long"
            return None
        if opcode > 2:
            return 1002, f"invalid opcode {opcode}"
        if (opcode == 0) != (self._fragments is not None):
            return 1002, ("unexpected continuation frame" if opcode == 0
                          else "expected a continuation frame")
        if self._size + length > self._max:
            return 1009, f"message over {self._max} bytes"
        return None

    def _frame(self, opcode: int, fin: bool, payload: bytes) -> Event | None:
        if opcode == 9:
            return Ping(payload)
        if opcode == 10:
            return None
        if opcode == 8:
            return self._close(payload)
        if not fin:
            if self._fragments is None:
                self._fragments, self._opcode = [], opcode
            self._fragments.append(payload)
            self._size += len(payload)
            return None
        if self._fragments is not None:
            self._fragments.append(payload)
            payload, opcode = b"".join(self._fragments), self._opcode
            self._fragments, self._size = None, 0
        if opcode == 2:
            return payload
        try:
            return payload.decode()
        except UnicodeDecodeError:
            return self._fail(1007, "invalid UTF-8 in a text message")

    def _close(self, payload: bytes) -> Event:
        self.done = True
        if not payload:
            return CloseReceived(NO_STATUS, "")
        code = int.from_bytes(payload[:2])
        if len(payload) == 1 or not (code in PEER_CLOSE_CODES or 3000 <= code < 5000):
            return self._fail(1002, "invalid close frame")
        try:
            return CloseReceived(code, payload[2:].decode())
        except UnicodeDecodeError:
            return self._fail(1007, "invalid UTF-8 in a close reason")

    def _fail(self, code: int, reason: str) -> Failure:
        self.done = True
        self._fragments = None
        return Failure(code, reason)
