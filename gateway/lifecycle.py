"""Connects and disconnects of hooked namespaces, appended to the lifecycle stream.

Backends that keep per-session state need to hear when a socket goes, and a gateway that
dies runs no callback, so these events are notifications, not hooks: at-least-once, never
in the way of a connect. Each is a JetStream publish of its own, acknowledged, retried once,
with a ``Nats-Msg-Id`` so a retry is stored once; at most ``MAX_IN_FLIGHT`` wait for their
acknowledgement (past it an event is dropped and counted). Presence stays the source of truth
for who is online.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from nats.errors import Error as NatsError
from nats.js.client import JetStreamContext
from nats.js.errors import Error as JetStreamError
from prometheus_client import Counter

from gateway.actions import NamespaceSocket
from shared.subjects import Subjects

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 1000
ATTEMPTS = 2
ACK_TIMEOUT_S = 2.0


def lifecycle_body(socket: NamespaceSocket, gateway: str, reason: str, ts: float) -> bytes:
    """``{nsp, sid, user, gateway, reason, ts}`` (``ts`` in milliseconds since the epoch)."""
    body: dict[str, Any] = {"nsp": socket.nsp, "sid": socket.sid, "user": socket.identity.sub,
                            "gateway": gateway, "reason": reason, "ts": int(ts * 1000)}
    return orjson.dumps(body)


class Lifecycle:
    def __init__(self, js: JetStreamContext, subjects: Subjects, gateway: str,
                 hooked: frozenset[str], failures: Counter) -> None:
        self._js = js
        self._subjects = subjects
        self._gateway = gateway
        self.hooked = hooked
        self._failures = failures
        self._in_flight: set[asyncio.Task[None]] = set()

    def connected(self, socket: NamespaceSocket) -> None:
        self._append(socket, "connect", "connected")

    def disconnected(self, socket: NamespaceSocket, reason: str) -> None:
        self._append(socket, "disconnect", reason)

    def _append(self, socket: NamespaceSocket, kind: str, reason: str) -> None:
        if socket.nsp not in self.hooked:
            return
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            self._failures.labels("dropped").inc()
            return
        body = lifecycle_body(socket, self._gateway, reason, time.time())
        task = asyncio.get_running_loop().create_task(
            self._publish(self._subjects.lifecycle(socket.nsp, kind), body,
                          f"{socket.sid}.{kind}"))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _publish(self, subject: str, body: bytes, msg_id: str) -> None:
        for _ in range(ATTEMPTS):
            try:
                await self._js.publish(subject, body, timeout=ACK_TIMEOUT_S,
                                       headers={"Nats-Msg-Id": msg_id})
                return
            except (NatsError, JetStreamError, TimeoutError):
                continue
        self._failures.labels("failed").inc()
        log.warning("a lifecycle event was not stored: %s", subject)

    async def close(self) -> None:
        """Let the events in flight finish (a drain's disconnects among them)."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=ACK_TIMEOUT_S * ATTEMPTS)


class Quiet(Lifecycle):
    """No namespace with hooks: nothing to append."""

    def __init__(self) -> None:
        self.hooked = frozenset()

    def _append(self, socket: NamespaceSocket, kind: str, reason: str) -> None:
        pass


QUIET = Quiet()
