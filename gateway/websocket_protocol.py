"""One upgraded connection on ``asyncio.Protocol``: frames to messages, and the close handshake.

The event loop calls :meth:`WebSocketProtocol.data_received`; the frame reader turns bytes
into messages, which go to the connection's :class:`MessageHandler` in order, in the same
call, at most ``PASS_LIMIT`` per event-loop pass: one read can hold thousands of small
frames, and the answers to all of them would leave in one write, past the send budget; the
rest wait a pass, after the flush. Reading also pauses while the transport's own buffer is
over ``WRITE_HIGH_WATER`` (a client that does not read its answers is not read either), and
while the connection asks (its backlog). Pings are answered at once. Closes follow RFC 6455
7.1: the server echoes a client's close code and then closes the TCP connection (the server
closes first, 7.1.1); a close the server starts waits for the client's answer for at most
``close_timeout``; a frame the reader refuses (1002, 1007, 1009) is answered with that code,
the write side is shut where the transport allows, and the rest of the input is discarded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, cast

from gateway.websocket import (
    CloseReceived,
    Event,
    Failure,
    FrameReader,
    Ping,
    close_frame,
    pong_frame,
)

CLOSE_TIMEOUT_S = 2.0
ABNORMAL = 1006  # RFC 6455 7.1.5: closed without a close frame
PASS_LIMIT = 64  # messages handed to the connection per event-loop pass
# Unsent bytes over which the client is not read (it does not read its answers): well above
# what one pass of answers or a fan-out burst leaves behind, so a reading client's pongs are
# never held back, and well under the send budget (1 MB), so a flood pauses before it is cut.
WRITE_HIGH_WATER = 256 * 1024
# Why reading is paused (any of them pauses it).
BACKLOG, PASS, WRITING = 1, 2, 4


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

    __slots__ = ("_close_timeout", "_handler", "_open", "_paused", "_pending", "_reader",
                 "_timer", "close_code", "closing", "preface", "transport")

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
        self._pending: list[Event] | None = None  # read, waiting for the next pass
        self._paused = 0
        self.preface: bytes | None = None
        """Bytes owed to the client before any frame (the HTTP layer's 101): a handler that
        writes through an outbox takes them (:meth:`take_preface`), so the 101 and the open
        packet leave in one write; otherwise they are written once the handler exists."""

    def take_preface(self) -> bytes | None:
        preface, self.preface = self.preface, None
        return preface

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        opened, self._open = self._open, None  # the closure is not kept for the socket's life
        if opened is not None:
            self._handler = opened(self)
        preface = self.take_preface()
        if preface is not None:
            self.transport.write(preface)

    def data_received(self, data: bytes) -> None:
        events = self._reader.feed(data)
        if self._pending is not None:  # read before the pause took effect
            self._pending.extend(events)
        else:
            self._dispatch(events, PASS_LIMIT)

    def _dispatch(self, events: list[Event], limit: int) -> None:
        handed = 0
        for index, event in enumerate(events):
            if isinstance(event, str | bytes):
                if handed == limit:
                    self._pending = events[index:]
                    self._pause(PASS)
                    asyncio.get_running_loop().call_soon(self._next_pass)
                    return
                handed += 1
                if not self.closing and self._handler is not None:
                    self._handler.receive(event)
            elif isinstance(event, Ping):
                if not self.closing:
                    self._write(pong_frame(event.payload))
            elif isinstance(event, CloseReceived):
                self._close_received(event.code)
            elif isinstance(event, Failure):
                self._failed(event)

    def _next_pass(self) -> None:
        events, self._pending = self._pending, None
        if events is None or self.transport is None:
            return
        self._dispatch(events, PASS_LIMIT)
        if self._pending is None:
            self._resume(PASS)

    def pause_writing(self) -> None:
        self._pause(WRITING)

    def resume_writing(self) -> None:
        self._resume(WRITING)

    def eof_received(self) -> bool:
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        events, self._pending = self._pending, None
        if events:  # what the client said before it went is still heard, in order
            self._dispatch(events, len(events))
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

    def hand_over(self, handler: MessageHandler) -> None:
        """Messages go to ``handler`` from now on (a polling session's upgrade)."""
        self._handler = handler

    def close(self, code: int, reason: str = "") -> None:
        """Start the close handshake: the client's answer (or the timeout) ends the TCP
        connection. Frames already written go first; nothing is written after."""
        if self.closing or self.transport is None:
            return
        self.closing = True
        self._write(close_frame(code, reason))
        self._arm_timeout()

    def pause_reading(self) -> None:
        """The connection's backlog is full: read nothing until :meth:`resume_reading`."""
        self._pause(BACKLOG)

    def resume_reading(self) -> None:
        self._resume(BACKLOG)

    def _pause(self, reason: int) -> None:
        was, self._paused = self._paused, self._paused | reason
        if not was and self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def _resume(self, reason: int) -> None:
        was, self._paused = self._paused, self._paused & ~reason
        if was and not self._paused and self.transport is not None and (
                not self.transport.is_closing()):
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
