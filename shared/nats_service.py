"""A service that, so far, connects to NATS and serves health and metrics.

Router and presence start from this shape; their own subscriptions and routes hang off the
connection and the app it builds.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CollectorRegistry

from shared import httpservice
from shared.config import ServiceSettings
from shared.metrics import NatsMetrics
from shared.natsconn import connect

log = logging.getLogger(__name__)


async def run_basic(service: str, settings: ServiceSettings, stop: asyncio.Event) -> None:
    registry = CollectorRegistry()
    metrics = NatsMetrics(registry, service)
    nc = await connect(settings.nats_url, f"{service}-{settings.instance_id}", metrics)
    app = httpservice.health_app(registry, lambda: nc.is_connected)
    runner = await httpservice.start(app, settings.host, settings.port)
    log.info("%s %s listening on %s:%s", service, settings.instance_id, settings.host,
             settings.port)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await nc.drain()
