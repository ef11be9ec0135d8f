"""The one way services connect to NATS: reconnect forever, count what happens, log once.

nats-py calls ``error_cb`` for every message a slow subscription drops; those are counted,
and logged at most once a second, so an overloaded process does not also drown in logging.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.api import KeyValueConfig, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError
from nats.js.errors import Error as JetStreamError
from nats.js.kv import KeyValue

from shared.backoff import Backoff
from shared.metrics import NatsMetrics

log = logging.getLogger(__name__)

T = TypeVar("T")
STARTUP_WITHIN_S = 60.0
STARTUP_BACKOFF = Backoff(base=0.25, cap=2.0)


async def key_value(js: JetStreamContext, config: KeyValueConfig) -> KeyValue:
    """The bucket, created with ``config`` unless it exists (then as it was created)."""
    try:
        return await js.create_key_value(config)
    except JetStreamError:
        return await js.key_value(config.bucket)


async def ensure_stream(js: JetStreamContext, config: StreamConfig, update: bool = True) -> None:
    """Create the stream unless it exists (idempotent, safe when processes race); ``update``
    also brings an existing one to ``config``, else one configured otherwise is left alone."""
    try:
        await js.add_stream(config)
    except BadRequestError:  # exists with another configuration
        if update:
            await js.update_stream(config)


class _ConnectionEvents:
    """nats-py's connection callbacks: metrics first, then the caller's hooks; errors are
    logged at most once a second (a flapping link would flood the log otherwise)."""

    def __init__(self, metrics: NatsMetrics, on_disconnect: Callable[[], None] | None,
                 on_reconnect: Callable[[], None] | None) -> None:
        self.metrics = metrics
        self.on_disconnect = on_disconnect
        self.on_reconnect = on_reconnect
        self.client: Client | None = None
        self._last_logged = 0.0

    async def error(self, exc: Exception) -> None:
        self.metrics.errors.labels(self.metrics.service, type(exc).__name__).inc()
        now = time.monotonic()
        if now - self._last_logged >= 1.0:
            self._last_logged = now
            log.warning("nats error: %s: %s", type(exc).__name__, exc)

    async def disconnected(self) -> None:
        self.metrics.connected.set(0)
        self.metrics.disconnects.inc()
        nc = self.client
        if nc is not None and not nc.is_closed and not nc.is_draining:
            log.warning("nats disconnected")
        if self.on_disconnect is not None:
            self.on_disconnect()

    async def reconnected(self) -> None:
        self.metrics.connected.set(1)
        self.metrics.reconnects.inc()
        log.info("nats reconnected")
        if self.on_reconnect is not None:
            self.on_reconnect()


async def connect(
    servers: tuple[str, ...],
    name: str,
    metrics: NatsMetrics,
    client: Client | None = None,
    on_disconnect: Callable[[], None] | None = None,
    on_reconnect: Callable[[], None] | None = None,
) -> Client:
    """Connect ``client`` (a plain nats-py client by default); the callbacks run on every
    disconnect and reconnect, after the metrics are updated."""
    events = _ConnectionEvents(metrics, on_disconnect, on_reconnect)
    nc = events.client = client if client is not None else Client()
    await nc.connect(
        servers=list(servers),
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=2,
        allow_reconnect=True,
        error_cb=events.error,
        disconnected_cb=events.disconnected,
        reconnected_cb=events.reconnected,
    )
    metrics.connected.set(1)
    return nc


async def when_ready(what: str, step: Callable[[], Awaitable[T]],
                     within: float = STARTUP_WITHIN_S) -> T:
    """Run an idempotent start-up step against JetStream, again and again while the cluster
    cannot answer yet: a freshly formed cluster times out or answers 503 until its meta leader
    is elected, and a service should wait for that instead of crashing and being restarted."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    for delay in STARTUP_BACKOFF.delays():
        try:
            return await step()
        except (NatsError, JetStreamError, TimeoutError) as exc:
            if loop.time() + delay > deadline:
                raise
            log.warning("%s: NATS not ready (%s: %s); retrying in %.2fs", what,
                        type(exc).__name__, exc, delay)
            await asyncio.sleep(delay)
    raise AssertionError("an endless schedule ended")
