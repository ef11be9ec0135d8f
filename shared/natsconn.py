"""The one way services connect to NATS: reconnect forever, count what happens, log once.

nats-py calls ``error_cb`` for every message a slow subscription drops; those are counted,
and logged at most once a second, so an overloaded process does not also drown in logging.
"""

from __future__ import annotations

import logging
import time

import nats
from nats.aio.client import Client

from shared.metrics import NatsMetrics

log = logging.getLogger(__name__)


async def connect(servers: tuple[str, ...], name: str, metrics: NatsMetrics) -> Client:
    last_logged = 0.0

    async def on_error(exc: Exception) -> None:
        nonlocal last_logged
        metrics.errors.labels(metrics.service, type(exc).__name__).inc()
        now = time.monotonic()
        if now - last_logged >= 1.0:
            last_logged = now
            log.warning("nats error: %s: %s", type(exc).__name__, exc)

    async def on_disconnect() -> None:
        metrics.connected.set(0)
        metrics.disconnects.inc()
        log.warning("nats disconnected")

    async def on_reconnect() -> None:
        metrics.connected.set(1)
        metrics.reconnects.inc()
        log.info("nats reconnected")

    client = await nats.connect(
        servers=list(servers),
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=2,
        allow_reconnect=True,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
    )
    metrics.connected.set(1)
    return client
