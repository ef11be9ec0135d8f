"""Client side of Engine.IO v4 over WebSocket, as pure state: frames and ``now`` in, events out.

It reads the open packet, answers nothing itself (the shell writes the pong), reassembles
binary packets with the project's codec and keeps the liveness deadline: like socket.io-client,
only a server ping proves the transport alive, and no ping within ``pingInterval +
pingTimeout`` means the transport is dead even while other frames flow
(``socketio-notes.md`` §1.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import orjson

from shared.protocol.engineio import EioType, InvalidFrame, parse_frame
from shared.protocol.packets import (
    BinaryAssembler,
    InvalidPacket,
    Packet,
    PacketType,
    parse_packet,
)

DEFAULT_PATH = "/socket.io/"


def engine_url(base: str, path: str = DEFAULT_PATH) -> str:
    """``http(s)://host:port`` (or ``ws(s)://``) to the Engine.IO WebSocket endpoint."""
    parts = urlsplit(base)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ValueError(f"not an http(s) or ws(s) URL: {base!r}")
    return urlunsplit((scheme, parts.netloc, path, "EIO=4&transport=websocket", ""))


@dataclass(frozen=True, slots=True)
class OpenParams:
    sid: str
    ping_interval: float  # seconds
    ping_timeout: float  # seconds
    max_payload: int


@dataclass(frozen=True, slots=True)
class Opened:
    params: OpenParams


@dataclass(frozen=True, slots=True)
class Pinged:
    """The server pinged; the shell answers ``3``."""


@dataclass(frozen=True, slots=True)
class Received:
    packet: Packet


@dataclass(frozen=True, slots=True)
class Broken:
    """A protocol violation or a server close: the transport is unusable."""

    reason: str


EngineEvent = Opened | Pinged | Received | Broken


def parse_server_packet(text: str) -> Packet | InvalidPacket:
    """Decode a server-to-client Socket.IO packet with the shared (server-side) codec.

    The shared parser refuses CONNECT_ERROR because a *server* never receives one; its
    payload rule is CONNECT's (an object), so it is parsed as a CONNECT and retyped.
    """
    if text[:1] == str(int(PacketType.CONNECT_ERROR)):
        parsed = parse_packet(str(int(PacketType.CONNECT)) + text[1:])
        if isinstance(parsed, InvalidPacket):
            return parsed
        return Packet(PacketType.CONNECT_ERROR, parsed.nsp, parsed.data, parsed.id)
    return parse_packet(text)


def parse_open(data: str) -> OpenParams | None:
    try:
        body = orjson.loads(data)
        return OpenParams(
            sid=str(body["sid"]),
            ping_interval=int(body["pingInterval"]) / 1000,
            ping_timeout=int(body["pingTimeout"]) / 1000,
            max_payload=int(body.get("maxPayload", 1_000_000)),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


class EngineCore:
    """One transport's Engine.IO/Socket.IO receive side. Call :meth:`receive` per frame."""

    def __init__(self) -> None:
        self.params: OpenParams | None = None
        self.deadline: float | None = None  # no ping by then: dead transport
        self._assembler = BinaryAssembler()

    def receive(self, frame: str | bytes, now: float) -> EngineEvent | None:
        eio = parse_frame(frame)
        if isinstance(eio, InvalidFrame):
            return Broken(eio.detail)
        if self.params is None:
            if eio.type is not EioType.OPEN or not isinstance(eio.data, str):
                return Broken("first frame is not an open packet")
            params = parse_open(eio.data)
            if params is None:
                return Broken("bad open packet")
            self.params = params
            self._arm(now)
            return Opened(params)
        if eio.type is EioType.PING:
            self._arm(now)
            return Pinged()
        if eio.type is EioType.CLOSE:
            return Broken("server closed the session")
        if eio.type is not EioType.MESSAGE:
            return None  # NOOP / UPGRADE / a stray PONG mean nothing here
        if isinstance(eio.data, bytes):
            return self._attachment(eio.data)
        if self._assembler.pending:
            return Broken("text frame while attachments pending")
        return self._socketio(eio.data)

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline

    def _arm(self, now: float) -> None:
        assert self.params is not None
        self.deadline = now + self.params.ping_interval + self.params.ping_timeout

    def _attachment(self, data: bytes) -> EngineEvent | None:
        result = self._assembler.add(data)
        if result is None:
            return None
        if isinstance(result, InvalidPacket):
            return Broken(result.detail)
        return Received(result)

    def _socketio(self, text: str) -> EngineEvent | None:
        packet = parse_server_packet(text)
        if isinstance(packet, InvalidPacket):
            return Broken(f"bad packet: {packet.detail}")
        if packet.type in (PacketType.BINARY_EVENT, PacketType.BINARY_ACK):
            started = self._assembler.start(packet)
            if started is None:
                return None
            if isinstance(started, InvalidPacket):
                return Broken(started.detail)
            return Received(started)
        return Received(packet)
