"""Requests and ordering barriers over one reply inbox, for the connect path.

nats-py's ``request`` costs a future, a ``wait_for`` timer, a ``Msg`` object with its headers
parsed into a dict, and a hop through the reply subscription's own task: several event-loop
passes per round trip. A connection's life makes several (admission, the session record, the
room's log position), so here a request is one PUB appended to the client's pending buffer
and one plain future, resolved right where the protocol parser hands the reply over (raw
header block, nothing parsed); one sweeper timer fails what stayed unanswered past the timeout.

A *barrier* proves that the server has processed every command this client queued before it (a
SUB, above all): it is a message to our own inbox, queued behind them in the same pending
buffer, and the server handles one connection's commands in order, so its echo cannot come back
before they took effect (so the client must not connect with ``no_echo``; ours do not). What it
proves is the local server's view, as a PING/PONG would. nats-py's ``flush`` cannot prove even
that with one round trip: its PING goes straight to the socket while a SUB still waits for the
flusher task. Barriers asked for in one loop pass share one message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger(__name__)

SWEEP_S = 0.25
_STATUS_LINE = b"NATS/1.0 "
NO_RESPONDERS = b"503"


class RequestFailed(Exception):
    """Nothing was sent, or nothing came back in time."""


@runtime_checkable
class RawClient(Protocol):
    """What the mux needs of a NATS client (:class:`shared.light_client.LightClient` has
    it): replies handed over raw by the protocol parser, and PUBs queued without a
    coroutine."""

    def new_inbox(self) -> str: ...

    async def subscribe(self, subject: str) -> Any: ...

    def route_replies(self, sid: int,
                      handler: Callable[[bytes, bytes, bytes | None], None]) -> None: ...

    def publish_nowait(self, subject: str, payload: bytes, reply: bytes = b"",
                       headers: bytes | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class Reply:
    data: bytes
    headers: bytes | None

    @property
    def status(self) -> bytes:
        """The status code of a status reply (``b"503"`` no responders, ``b"404"``,
        ``b"204"`` end of a batch), or ``b""`` for an ordinary message."""
        headers = self.headers
        if headers is None or not headers.startswith(_STATUS_LINE):
            return b""
        return headers[len(_STATUS_LINE):len(_STATUS_LINE) + 3]

    @property
    def no_responders(self) -> bool:
        """The server's answer for a subject nobody subscribes: it comes to a muxed inbox
        like any reply, so a caller tells "no worker" from "no answer in time" at once."""
        return self.status == NO_RESPONDERS


Answer = Callable[["list[Reply] | None"], None]
"""Takes a request's replies once: ``None`` when none came in time or the mux closed."""


@dataclass(slots=True)
class _Waiting:
    deadline: float
    answer: Answer
    batch: list[Reply] | None  # a batch request collects until a status reply
    cancel: Callable[[], object] | None  # what closing does instead of answering None


class RequestMux:
    """``error``: the exception type failures are raised as (the caller's own)."""

    def __init__(self, nc: RawClient, timeout_s: float,
                 error: type[Exception] = RequestFailed) -> None:
        self._nc = nc
        self._timeout_s = timeout_s
        self._error = error
        self._prefix = b""
        self._next = 0
        self._waiting: dict[bytes, _Waiting] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._barrier: list[asyncio.Future[None]] = []  # this pass's callers, one each
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        prefix = self._nc.new_inbox() + "."
        sub = await self._nc.subscribe(prefix + "*")
        self._nc.route_replies(sub._id, self._on_reply)
        self._prefix = prefix.encode()

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    @property
    def inbox(self) -> str:
        """The prefix of every reply subject (and barrier) of this mux."""
        return self._prefix.decode()

    async def request(self, subject: str, payload: bytes, headers: bytes | None = None) -> Reply:
        """One reply (a no-responders status is a reply too: see :attr:`Reply.status`).
        Raises ``error`` when nothing was sent or nothing came back."""
        return (await self._send(subject, payload, headers, None))[0]

    def batch(self, subject: str, payload: bytes) -> asyncio.Future[list[Reply]]:
        """Replies up to and including the first status reply (a batch direct get), sent
        before this returns."""
        return self._send(subject, payload, None, [])

    def barrier(self) -> asyncio.Future[None]:
        """Done once the server has processed everything queued before this pass ends. Each
        caller gets a future of its own (one message serves them all): a future shared by
        coroutines run eagerly (:mod:`gateway.eager`) would be awaited while still flagged
        as blocking by the first, which asyncio refuses."""
        loop = self._started()
        if not self._barrier:
            loop.call_soon(self._send_barrier)
        waiter: asyncio.Future[None] = loop.create_future()
        self._barrier.append(waiter)
        return waiter

    def _send_barrier(self) -> None:
        waiters, self._barrier = self._barrier, []
        loop = self._started()
        echoed: asyncio.Future[list[Reply]] = loop.create_future()

        def answer(done: asyncio.Future[list[Reply]]) -> None:
            failure = None if done.cancelled() else done.exception()
            for waiter in waiters:
                if waiter.done():
                    continue
                if done.cancelled():
                    waiter.cancel()
                elif failure is not None:
                    waiter.set_exception(failure)
                else:
                    waiter.set_result(None)

        echoed.add_done_callback(answer)
        try:
            token = self._token()
            self._nc.publish_nowait((self._prefix + token).decode(), b"")
        except Exception as exc:  # the client's own failure type
            echoed.set_exception(self._error(str(exc) or type(exc).__name__))
            return
        self._wait(token, self._resolver(echoed), None, echoed.cancel)

    def send(self, subject: str, payload: bytes, headers: bytes | None,
             answer: Answer) -> None:
        """Send now, and hand the one reply to ``answer`` (no future: for the hot path).
        Raises ``error`` when nothing was sent; then ``answer`` is never called."""
        self._started()
        token = self._publish(subject, payload, headers)
        self._wait(token, answer, None)

    def _send(self, subject: str, payload: bytes, headers: bytes | None,
              batch: list[Reply] | None) -> asyncio.Future[list[Reply]]:
        loop = self._started()
        token = self._publish(subject, payload, headers)
        future: asyncio.Future[list[Reply]] = loop.create_future()
        self._wait(token, self._resolver(future), batch, future.cancel)
        return future

    def _publish(self, subject: str, payload: bytes, headers: bytes | None) -> bytes:
        token = self._token()
        try:
            self._nc.publish_nowait(subject, payload, self._prefix + token, headers)
        except Exception as exc:  # the client's own failure type
            raise self._error(str(exc) or type(exc).__name__) from exc
        return token

    def _resolver(self, future: asyncio.Future[list[Reply]]) -> Answer:
        def answer(replies: list[Reply] | None) -> None:
            if future.done():
                return
            if replies is None:
                future.set_exception(self._error("no reply from NATS in time"))
            else:
                future.set_result(replies)
        return answer

    def _started(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or not self._prefix:
            raise self._error("request inbox not subscribed")
        return self._loop

    def _token(self) -> bytes:
        self._next += 1
        return b"%x" % self._next

    def _wait(self, token: bytes, answer: Answer, batch: list[Reply] | None,
              cancel: Callable[[], object] | None = None) -> None:
        loop = self._started()
        self._waiting[token] = _Waiting(loop.time() + self._timeout_s, answer, batch, cancel)
        if self._sweeper is None:
            self._sweeper = loop.call_later(SWEEP_S, self._sweep)

    def _on_reply(self, subject: bytes, data: bytes, headers: bytes | None) -> None:
        token = subject[len(self._prefix):]
        waiting = self._waiting.get(token)
        if waiting is None:
            return
        reply = Reply(data, headers)
        if waiting.batch is not None and not reply.status:
            waiting.batch.append(reply)
            return
        del self._waiting[token]
        waiting.answer([reply] if waiting.batch is None else [*waiting.batch, reply])

    def _sweep(self) -> None:
        """Deadlines rise with insertion order, so expired entries are at the front."""
        loop = self._started()
        now = loop.time()
        expired = []
        for token, waiting in self._waiting.items():
            if waiting.deadline > now:
                break
            expired.append(token)
        for token in expired:
            self._waiting.pop(token).answer(None)
        if expired:
            log.warning("%d requests unanswered after %.1fs (%s)", len(expired),
                        self._timeout_s, self._error.__name__)
        self._sweeper = loop.call_later(SWEEP_S, self._sweep) if self._waiting else None

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        waiting, self._waiting = self._waiting, {}
        for entry in waiting.values():
            if entry.cancel is not None:
                entry.cancel()
            else:
                entry.answer(None)
