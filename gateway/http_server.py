"""The gateway's HTTP/1.1 connections on ``asyncio.Protocol``: parse, route, answer, upgrade.

A connection is an object with a parser and a timer, driven by the event loop's callbacks:
no task per connection. Requests are answered one at a time and in order (pipelined ones
wait, and reading pauses when too many do), keep-alive is the HTTP/1.1 default, a handler
that returns an awaitable holds the connection's next request until its answer is written
(the long-poll GET of the polling transport will), and an upgrade hands the transport and the
bytes that followed the request to the new protocol without a copy of the parser's state.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from typing import cast

from gateway.http import Handler, Request, RequestParser, Response, Upgrade, text_response
from gateway.websocket_protocol import WebSocketProtocol

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 10.0  # a request must be complete this long after the previous answer
MAX_QUEUED = 16  # pipelined requests read ahead of the one being answered

INTERNAL_ERROR = text_response(500, "internal error\n", close=True)


class HttpProtocol(asyncio.Protocol):
    def __init__(self, handler: Handler, max_body: int,
                 timeout: float = REQUEST_TIMEOUT_S) -> None:
        self._handler = handler
        self._max_body = max_body
        self._timeout = timeout
        self._transport: asyncio.Transport | None = None
        self._parser: RequestParser | None = None
        self._queue: deque[Request | Response] = deque()
        self._answering: asyncio.Future[Response | Upgrade] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._parser = RequestParser(self._max_body, peer[0] if peer else None)
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        if self._parser is None:
            return
        parser = self._parser
        self._queue.extend(parser.feed(data))
        self._next()
        # Still waiting on an answer: stop reading past the bound, and after the last request
        # the parser takes (an upgrade's frames must wait for the 101, not be dropped).
        if self._transport is not None and (parser.done or len(self._queue) > MAX_QUEUED):
            self._pause()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        if self._answering is not None:
            self._answering.cancel()
        self._transport = None
        self._parser = None
        self._queue.clear()

    # --- answering, one request at a time ---------------------------------------------------

    def _next(self) -> None:
        while self._answering is None and self._queue and self._transport is not None:
            item = self._queue.popleft()
            if isinstance(item, Response):  # the parser's refusal: the last thing written
                self._write(item, keep_alive=False)
                return
            self._cancel_timer()
            try:
                result = self._handler(item)
            except Exception:
                log.exception("HTTP handler failed on %s %s", item.method, item.path)
                result = INTERNAL_ERROR
            if isinstance(result, Upgrade):
                self._upgrade(item, result)
                return
            if isinstance(result, Response):
                self._answer(item, result)
            else:
                answering = self._answering = asyncio.ensure_future(result)
                answering.add_done_callback(functools.partial(self._answered, item))
        if self._answering is None and not self._queue and self._transport is not None:
            self._resume()
            self._arm_timer()

    def _answered(self, request: Request, done: asyncio.Future[Response | Upgrade]) -> None:
        self._answering = None
        if done.cancelled():
            return
        error = done.exception()
        if error is not None:
            log.error("HTTP handler failed on %s %s", request.method, request.path,
                      exc_info=error)
        result = INTERNAL_ERROR if error is not None else done.result()
        if isinstance(result, Upgrade):  # decided after a wait (a takeover)
            self._upgrade(request, result)
            return
        self._answer(request, result)
        self._next()

    def _answer(self, request: Request, response: Response) -> None:
        last = not self._queue and self._parser is not None and self._parser.done
        keep_alive = request.keep_alive and not response.close and not last
        self._write(response, keep_alive, head=request.method == "HEAD")

    def _write(self, response: Response, keep_alive: bool, head: bool = False) -> None:
        transport = self._transport
        if transport is None:
            return
        transport.write(response.encode(keep_alive, head))
        if not keep_alive:
            self._queue.clear()
            self._transport = None
            transport.close()

    def _upgrade(self, request: Request, upgrade: Upgrade) -> None:
        transport, parser = self._transport, self._parser
        if transport is None or parser is None or parser.upgraded is None or self._queue:
            self._answer(request, text_response(400, "not an upgrade request\n", close=True))
            return
        self._transport = self._parser = None
        protocol = upgrade.protocol()
        if isinstance(protocol, WebSocketProtocol) and not parser.upgraded:
            protocol.preface = upgrade.response.encode()
        else:  # frames sent with the request may be answered (pong, close) before a flush
            transport.write(upgrade.response.encode())
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if parser.upgraded:
            protocol.data_received(parser.upgraded)
        if self._paused and not transport.is_closing():
            transport.resume_reading()

    # --- flow and time ----------------------------------------------------------------------

    def _pause(self) -> None:
        if not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def _resume(self) -> None:
        parser = self._parser
        if self._paused and self._transport is not None and parser is not None and (
                not parser.done):
            self._paused = False
            self._transport.resume_reading()

    def _arm_timer(self) -> None:
        self._cancel_timer()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._timeout, self._timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        """No complete request in time (a slow or idle client): close without an answer."""
        self._timer = None
        if self._transport is not None and self._answering is None:
            self._transport.close()
