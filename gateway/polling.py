"""One Engine.IO session over HTTP long-polling, and its upgrade to WebSocket.

A :class:`PollingChannel` stands where a :class:`~gateway.websocket_protocol.WebSocketProtocol`
stands for a WebSocket session: the :class:`~gateway.connection.Connection` writes frames to
its ``transport`` (an outbox, under the same send budget), closes it, pauses it. Written
frames are taken back apart into packets and wait for the client's next GET; a parked GET is
answered as soon as something is written, so a poll costs one answer per flush, not per packet.
POST bodies are split into packets and handed to the connection as WebSocket messages would
be. Only one GET and one POST may be pending (an overlap ends the session, as the reference
server does); a parked GET whose client went away ends it too.

The upgrade (``2probe`` → ``3probe``, a noop to the pending GET, then ``5``) runs on a
:class:`Prober` over the new WebSocket; at ``5`` the connection's frames move to it, what was
buffered for polling goes first, and this channel answers no HTTP request again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from gateway.cors import Headers
from gateway.http import Response
from gateway.polling_codec import (
    BAD_REQUEST,
    CLOSE,
    NOOP,
    UNKNOWN_SID,
    PollingError,
    decode_payload,
    encode_payload,
    unframe,
)
from gateway.websocket_protocol import WebSocketProtocol
from shared.protocol.frames import BINARY, ws_frame

log = logging.getLogger(__name__)

LINGER_S = 5.0  # a closed session still answers its close packet to a late GET this long
CONTENT_TYPE = ("Content-Type", "text/plain; charset=UTF-8")
NO_STORE = ("Cache-Control", "no-store")


class PollingHandler(Protocol):
    """The connection's side, as a WebSocket protocol sees it."""

    def receive(self, message: str | bytes) -> None: ...

    def lost(self) -> None: ...

    def switch(self, ws: WebSocketProtocol) -> None:
        """Carry on over ``ws``: frames go to it from now on."""


class PollingTransport(asyncio.WriteTransport):
    """What the outbox writes a polling session's frames to."""

    __slots__ = ("_channel",)

    def __init__(self, channel: PollingChannel) -> None:
        super().__init__()
        self._channel = channel

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._channel.written(bytes(data))

    def is_closing(self) -> bool:
        return self._channel.closed or self._channel.upgraded

    def get_write_buffer_size(self) -> int:
        return self._channel.buffered


def payload_size(packets: list[str | bytes]) -> int:
    """Bytes of these packets in a GET body (base64 for binary), separators included."""
    return sum(len(p) * 4 // 3 + 4 if isinstance(p, bytes) else len(p.encode())
               for p in packets) + max(0, len(packets) - 1)


def error_response(error: PollingError, cors: Headers = ()) -> Response:
    return Response(error.status, error.body(), (("Content-Type", "application/json"),
                                                 *cors))


class PollingChannel:
    """The polling side of one Engine.IO session (see the module docstring)."""

    def __init__(self, sid: str, on_gone: Callable[[PollingChannel], None]) -> None:
        self.sid = sid
        self.transport = PollingTransport(self)
        self.handler: PollingHandler | None = None
        self.close_code: int | None = None
        self.closed = False
        self.upgraded = False
        self.upgrading = False
        self.buffered = 0
        self._packets: list[str | bytes] = []
        self._waiter: asyncio.Future[Response] | None = None
        self._waiter_cors: Headers = ()
        self._posting = False
        self._post_waiter: asyncio.Future[Response] | None = None
        self._post_cors: Headers = ()
        self._paused = False
        self._limit: int | None = None
        self._on_gone = on_gone
        self._loop = asyncio.get_running_loop()
        self.frozen = False
        self.held: list[str | bytes] = []
        """Posted while frozen: read by whoever holds the session once it thaws."""
        self.moved_to: str | None = None
        """The gateway that took this session over; its requests are forwarded there."""

    # --- what the connection calls (as on a WebSocket) ---------------------------------------

    def written(self, data: bytes) -> None:
        messages, _ = unframe(data)
        self._packets.extend(messages)
        self.buffered += len(data)
        if self._waiter is not None and not self.upgrading and not self.frozen:
            self._answer_get()

    def close(self, code: int, reason: str = "") -> None:
        """The server ends the session: the close packet goes to the pending or next GET."""
        if self.closed:
            return
        self.close_code = code
        self._packets.append(CLOSE)
        self.closed = True
        if self._waiter is not None:
            self._answer_get()
        self._finish()

    def pause_reading(self) -> None:
        self._paused = True

    def take_preface(self) -> None:
        """Every response is written whole by the HTTP layer: nothing precedes the frames."""
        return None

    def resume_reading(self) -> None:
        self._paused = False
        waiter, self._post_waiter = self._post_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(self._ok(self._post_cors))

    # --- HTTP requests ------------------------------------------------------------------------

    def get(self, cors: Headers, limit: int | None = None,
            forwarded: bool = False) -> Response | Awaitable[Response]:
        """A poll. ``limit`` caps the answer's body (what does not fit waits for the next
        poll); a ``forwarded`` one is cancelled by :meth:`forwarded_get_cancelled`, not by
        its HTTP connection."""
        self._limit = limit
        if self.upgraded:
            return error_response(BAD_REQUEST, cors)
        if self._waiter is not None:  # two GETs at once: the session ends (reference server)
            log.info("polling session %s: overlapping GET", self.sid[:6])
            self.lose(4002)
            return error_response(BAD_REQUEST, cors)
        if self.upgrading:
            return self._payload([NOOP], cors)
        if self._packets and not self.frozen:
            return self._take(cors)
        if self.closed:
            return error_response(UNKNOWN_SID, cors)
        waiter = self._waiter = self._loop.create_future()
        self._waiter_cors = cors
        if not forwarded:
            waiter.add_done_callback(self._get_done)
        return waiter

    def forwarded_get_cancelled(self) -> None:
        """The client of a GET parked here for another gateway went away."""
        if self._waiter is not None and not self.upgraded:
            self._waiter = None
            self.lose(1006)

    def post(self, body: bytes, cors: Headers) -> Response | Awaitable[Response]:
        if self.upgraded or self.closed:
            return error_response(BAD_REQUEST if self.upgraded else UNKNOWN_SID, cors)
        if self._posting:
            log.info("polling session %s: overlapping POST", self.sid[:6])
            self.lose(4002)
            return error_response(BAD_REQUEST, cors)
        packets = decode_payload(body)
        if packets is None:
            return error_response(BAD_REQUEST, cors)
        if self.frozen:
            self.held.extend(packets)
            return self._ok(cors)
        handler = self.handler
        if handler is not None:
            for packet in packets:
                if self.closed:
                    break
                handler.receive(packet)
        if not self._paused:
            return self._ok(cors)
        self._posting = True
        waiter = self._post_waiter = self._loop.create_future()
        self._post_cors = cors
        waiter.add_done_callback(self._post_done)
        return waiter

    def lose(self, code: int) -> None:
        """The client is gone (its GET was cancelled, or it broke the rules)."""
        if self.closed or self.moved_to is not None:
            return
        self.close_code = code
        self.closed = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(self._payload([CLOSE], self._waiter_cors))
        self._finish()

    # --- a takeover by another gateway -------------------------------------------------------

    def freeze(self) -> None:
        """Hold the session still while it is handed over: polls wait, posts are kept."""
        self.frozen = True

    def thaw(self) -> None:
        """Carry on here: what was posted meanwhile is read, in order, and a poll answered."""
        self.frozen = False
        held, self.held = self.held, []
        for packet in held:
            if self.handler is None or self.closed:
                break
            self.handler.receive(packet)
        if self._packets and self._waiter is not None:
            self._answer_get()

    def moved(self, gateway: str) -> list[str | bytes]:
        """The session now lives on ``gateway``: a waiting poll returns a noop (the client
        polls again, and that request is forwarded there). Returns the packets that were
        waiting for the client, which move with the session."""
        self.moved_to = gateway
        self.handler = None
        packets, self._packets, self.buffered = self._packets, [], 0
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(self._payload([NOOP], self._waiter_cors))
        self._loop.call_later(LINGER_S * 2, self._on_gone, self)
        return packets

    @property
    def waiting(self) -> list[str | bytes]:
        """The packets waiting for the client's next poll."""
        return self._packets

    def preload(self, packets: list[str | bytes]) -> None:
        """Packets a taken-over session was owed, ahead of anything written here."""
        self._packets[:0] = packets
        self.buffered += payload_size(packets)

    # --- the upgrade ------------------------------------------------------------------------

    def probing(self) -> None:
        """``2probe`` arrived on the new WebSocket: the pending GET returns a noop, so the
        client can pause polling and send ``5``."""
        self.upgrading = True
        if self._waiter is not None:
            waiter, self._waiter = self._waiter, None
            waiter.set_result(self._payload([NOOP], self._waiter_cors))

    def upgrade(self, ws: WebSocketProtocol) -> None:
        """``5``: what waits for polling goes onto ``ws`` first, in order, then the connection
        writes there; no HTTP request of this session is answered again."""
        self.upgraded = True
        packets, self._packets, self.buffered = self._packets, [], 0
        if ws.transport is not None and packets:
            ws.transport.write(b"".join(
                ws_frame(p, BINARY) if isinstance(p, bytes) else ws_frame(p.encode())
                for p in packets))
        if self._waiter is not None:
            waiter, self._waiter = self._waiter, None
            waiter.set_result(self._payload([NOOP], self._waiter_cors))
        if self.handler is not None:
            self.handler.switch(ws)

    def probe_failed(self) -> None:
        self.upgrading = False
        if self._packets and self._waiter is not None:
            self._answer_get()

    # --- inside -----------------------------------------------------------------------------

    def _answer_get(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(self._take(self._waiter_cors))

    def _take(self, cors: Headers) -> Response:
        packets, limit = self._packets, self._limit
        if limit is None or payload_size(packets) <= limit:
            self._packets, self.buffered = [], 0
            return self._payload(packets, cors)
        count, size = 1, payload_size(packets[:1])
        while count < len(packets) and size + payload_size(packets[count:count + 1]) < limit:
            size += payload_size(packets[count:count + 1]) + 1
            count += 1
        self._packets = packets[count:]
        self.buffered = payload_size(self._packets)
        return self._payload(packets[:count], cors)

    def _payload(self, packets: list[str | bytes], cors: Headers) -> Response:
        return Response(200, encode_payload(packets), (CONTENT_TYPE, NO_STORE, *cors))

    def _ok(self, cors: Headers) -> Response:
        return Response(200, b"ok", (("Content-Type", "text/html"), NO_STORE, *cors))

    def _get_done(self, waiter: asyncio.Future[Response]) -> None:
        if waiter.cancelled():  # the client closed the connection of its pending GET
            if self._waiter is waiter:
                self._waiter = None
            if not self.upgraded:
                self.lose(1006)

    def _post_done(self, waiter: asyncio.Future[Response]) -> None:
        self._posting = False
        if self._post_waiter is waiter:
            self._post_waiter = None

    def _finish(self) -> None:
        handler, self.handler = self.handler, None
        if handler is not None:
            self._loop.call_soon(handler.lost)
        self._loop.call_later(LINGER_S, self._on_gone, self)


class Prober:
    """The new WebSocket of an upgrading polling session, until ``5`` hands it over."""

    def __init__(self, channel: PollingChannel, ws: WebSocketProtocol,
                 upgraded: Callable[[], None] = lambda: None) -> None:
        self._channel = channel
        self._ws = ws
        self._done = False
        self._upgraded = upgraded

    def receive(self, message: str | bytes) -> None:
        if self._done:
            return
        if message == "2probe":
            if self._ws.transport is not None:
                self._ws.transport.write(ws_frame(b"3probe"))
            self._channel.probing()
        elif message == "5" and self._channel.upgrading and not self._channel.closed:
            self._done = True
            self._channel.upgrade(self._ws)
            self._upgraded()
        else:
            self._done = True
            self._channel.probe_failed()
            self._ws.close(1002, "expected the upgrade handshake")

    def closing(self) -> None:
        self.lost()

    def lost(self) -> None:
        if not self._done:
            self._done = True
            self._channel.probe_failed()
