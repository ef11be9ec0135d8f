"""Wiring of one presence replica: NATS, the buckets, the service, health and metrics."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CollectorRegistry

from presence.config import config_of
from presence.metrics import PresenceMetrics
from presence.nats_store import NatsPresenceStore
from presence.service import PresenceService
from shared import httpservice
from shared.config import PresenceSettings
from shared.light_client import LightClient
from shared.metrics import NatsMetrics
from shared.natsconn import connect, when_ready
from shared.registry_kv import RegistryKV

log = logging.getLogger(__name__)


async def run(settings: PresenceSettings, stop: asyncio.Event) -> None:
    registry = CollectorRegistry()
    nats_metrics = NatsMetrics(registry, "presence")
    metrics = PresenceMetrics(registry)
    nc = LightClient()
    await connect(settings.nats_url, f"presence-{settings.instance_id}", nats_metrics,
                  client=nc)
    config = config_of(settings)
    gateways = await when_ready("opening the registry", lambda: RegistryKV.open(
        nc, settings.subject_prefix, settings.gateway_ttl_s, settings.stream_replicas))
    await gateways.watch()
    store = await when_ready("opening the presence bucket", lambda: NatsPresenceStore.open(
        nc, settings.subject_prefix, settings.stream_replicas, config.tombstone_ttl,
        config.typing_ttl))
    service = PresenceService(nc, settings, metrics, store, gateways)
    app = httpservice.health_app(registry, lambda: service.ready and nc.is_connected)
    runner = await httpservice.start(app, settings.host, settings.port)
    try:
        await service.start()
        log.info("presence %s listening on %s:%s", settings.instance_id, settings.host,
                 settings.port)
        await stop.wait()
    finally:
        await service.stop()
        store.close()
        await gateways.close()
        await runner.cleanup()
        await nc.drain()
