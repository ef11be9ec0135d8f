"""One upgraded connection on ``asyncio.Protocol``: frames to messages, and the close handshake.

The event loop calls :meth:`WebSocketProtocol.data_received`; the frame reader turns bytes
into messages, which go to the connection's :class:`MessageHandler` in order, in the same
call. Pings are answered at once. Closes follow RFC 6455 7.1: the server echoes a client's
close code and then closes the TCP connection (the server closes first, 7.1.1); a close the
server starts waits for the client's answer for at most ``close_timeout``; a frame the reader
refuses (1002, 1007, 1009) is answered with that code, the write side is shut where the
transport allows, and the rest of the input is discarded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, cast

from gateway.websocket import (
    CloseReceived,
    Failure,
    FrameReader,
    Ping,
    close_frame,
    pong_frame,
)

CLOSE_TIMEOUT_S = 2.0
ABNORMAL = 1006  # RFC 6455 7.1.5: closed without a close frame


class SentClose(asyncio.WriteTransport):
    """What an outbox writes to once the close frame is out: nothing may follow it (RFC 6455
    5.5.1), and a closing transport is what every writer already skips."""

    def is_closing(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass


SENT_CLOSE = SentClose()


class MessageHandler(Protocol):
    def receive(self, message: str | bytes) -> None: ...

    def closing(self) -> None:
        """This layer sent a close frame of its own (an echo, a refused frame): stop sending."""

    def lost(self) -> None: ...


class WebSocketProtocol(asyncio.Protocol):
    """``opened`` builds the connection's handler once the transport exists. ``close_code`` is
    the code of the close frame received (or the one a refused frame ended with), 1006 for a
    connection that dropped without one: what the connection's log line reports."""

    __slots__ = ("_close_timeout", "_handler", "_open", "_reader", "_timer", "close_code",
                 "closing", "transport")

    def __init__(self, max_size: int, opened: Callable[[WebSocketProtocol], MessageHandler],
                 close_timeout: float = CLOSE_TIMEOUT_S) -> None:
        self._reader = FrameReader(max_size)
        self._open: Callable[[WebSocketProtocol], MessageHandler] | None = opened
        self._handler: MessageHandler | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._close_timeout = close_timeout
        self.transport: asyncio.Transport | None = None
        self.close_code: int | None = None
        self.closing = False  # a close frame was sent: no more frames go out

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        opened, self._open = self._open, None  # the closure is not kept for the socket's life
        if opened is not None:
            self._handler = opened(self)

    def data_received(self, data: bytes) -> None:
        for event in self._reader.feed(data):
            if isinstance(event, str | bytes):
                if not self.closing and self._handler is not None:
                    self._handler.receive(event)
            elif isinstance(event, Ping):
                if not self.closing:
                    self._write(pong_frame(event.payload))
            elif isinstance(event, CloseReceived):
                self._close_received(event.code)
            elif isinstance(event, Failure):
                self._failed(event)

    def eof_received(self) -> bool:
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.close_code is None:
            self.close_code = ABNORMAL
        self.closing = True
        self.transport = None
        handler, self._handler = self._handler, None
        if handler is not None:
            handler.lost()

    # --- the shell's side -------------------------------------------------------------------

    def close(self, code: int, reason: str = "") -> None:
        """Start the close handshake: the client's answer (or the timeout) ends the TCP
        connection. Frames already written go first; nothing is written after."""
        if self.closing or self.transport is None:
            return
        self.closing = True
        self._write(close_frame(code, reason))
        self._arm_timeout()

    def pause_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    # --- internals --------------------------------------------------------------------------

    def _close_received(self, code: int) -> None:
        self.close_code = code
        if not self.closing:
            self._closed_here(close_frame(code))
        if self.transport is not None:
            self.transport.close()

    def _failed(self, failure: Failure) -> None:
        transport = self.transport
        if transport is None:
            return
        if self.close_code is None:
            self.close_code = failure.code
        if not self.closing:
            self._closed_here(close_frame(failure.code, failure.reason))
        if transport.can_write_eof():
            transport.write_eof()
        self._arm_timeout()

    def _closed_here(self, frame: bytes) -> None:
        self.closing = True
        self._write(frame)
        if self._handler is not None:
            self._handler.closing()

    def _write(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    def _arm_timeout(self) -> None:
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._close_timeout, self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        if self.transport is not None:
            self.transport.abort()
