"""Publishes to the room log, acknowledged without a task, future or timer per message.

nats-py's ``publish_async`` waits for its in-flight semaphore through ``asyncio.wait_for``
(a new Task and a timer: three event-loop passes per publish, measured), delivers each PubAck
through a subscription task, and the caller's ``wait_for`` on the ack adds two more passes and
a timer. At fan-out rates that stalls every publisher's reader for several passes, so frames
of one pass never coalesce. Here a publish is appended to the client's pending buffer at once,
its PubAck is read right where the protocol parser hands the reply over, and one sweeper
timer per gateway fails what stayed unanswered past the timeout. The in-flight bound is a
plain count: the loop is single-threaded, so it is exact.
"""

from __future__ import annotations

import asyncio
import logging

import orjson

from shared.light_client import LightClient
from shared.room_log import Done, LogUnavailable, PublishResult

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 20_000
SWEEP_S = 0.25
_NO_RESPONDERS = b"503"


def parse_ack(data: bytes, headers: bytes | None) -> PublishResult | None:
    """A PubAck body as the stream answers it; ``None`` for an error or no stream."""
    if headers and not data and _NO_RESPONDERS in headers[:16]:
        return None
    try:
        ack = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(ack, dict) or "error" in ack:
        return None
    seq = ack.get("seq")
    if not isinstance(seq, int):
        return None
    return PublishResult(seq, bool(ack.get("duplicate")))


def publish_headers(msg_id: str | None) -> bytes | None:
    if msg_id is None:
        return None
    return b"NATS/1.0\r\nNats-Msg-Id: " + msg_id.encode() + b"\r\n\r\n"


class LogPublisher:
    """Logged publishes in flight for one gateway, answered through ``done`` exactly once:
    with the stream's sequence, or ``None`` (error, timeout, lost connection)."""

    def __init__(self, nc: LightClient, timeout_s: float,
                 max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._nc = nc
        self._timeout_s = timeout_s
        self._max = max_in_flight
        self._prefix = b""
        self._next = 0
        self._waiting: dict[bytes, tuple[float, Done]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        """Subscribe the reply inbox once (the one await: its SUB must precede any PUB)."""
        self._loop = asyncio.get_running_loop()
        self._prefix = (self._nc.new_inbox() + ".").encode()
        sub = await self._nc.subscribe(self._prefix.decode() + "*")
        self._nc.route_replies(sub._id, self._on_reply)

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    def publish(self, subject: str, body: bytes, msg_id: str | None, done: Done) -> None:
        """Send now; raises :class:`LogUnavailable` when nothing could be sent."""
        if not self._prefix or not self._nc.is_connected:
            raise LogUnavailable("not connected to NATS")
        if len(self._waiting) >= self._max:
            raise LogUnavailable("too many publishes in flight")
        self._next += 1
        token = b"%x" % self._next
        self._nc.publish_nowait(subject, body, self._prefix + token, publish_headers(msg_id))
        assert self._loop is not None
        self._waiting[token] = (self._loop.time() + self._timeout_s, done)
        if self._sweeper is None:
            self._sweeper = self._loop.call_later(SWEEP_S, self._sweep)

    def _on_reply(self, subject: bytes, data: bytes, headers: bytes | None) -> None:
        entry = self._waiting.pop(subject[len(self._prefix):], None)
        if entry is not None:
            entry[1](parse_ack(data, headers))

    def _sweep(self) -> None:
        """Deadlines rise with insertion order, so expired entries are at the front."""
        assert self._loop is not None
        now = self._loop.time()
        waiting = self._waiting
        expired = []
        for token, (deadline, _) in waiting.items():
            if deadline > now:
                break
            expired.append(token)
        for token in expired:
            _, done = waiting.pop(token)
            done(None)
        if expired:
            log.warning("%d log publishes unanswered after %.1fs", len(expired),
                        self._timeout_s)
        self._sweeper = self._loop.call_later(SWEEP_S, self._sweep) if waiting else None

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        waiting, self._waiting = self._waiting, {}
        for _, done in waiting.values():
            done(None)
