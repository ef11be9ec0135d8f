"""``python -m router``: wiring of the registry, the room log and both API front doors.

Start order: NATS, the registry (its liveness watch, so lookups see only live gateways, and
the reaper on it), the namespace logs, the NATS endpoints, then HTTP. ``/readyz`` answers
200 once the NATS endpoints are subscribed and while NATS is connected.
"""

from __future__ import annotations

import asyncio
import logging

from nats.errors import Error as NatsError
from nats.js.errors import Error as JetStreamError
from prometheus_client import CollectorRegistry

from router.api import Api
from router.http_api import add_routes
from router.kicks import gateway_kicker
from router.metrics import RouterMetrics
from router.nats_api import NatsApi
from router.operations import Operations
from router.presence_query import presence_asker
from router.reaper import Reaper
from router.socket_emit import gateway_emitter
from shared import httpservice
from shared.config import RouterSettings
from shared.light_client import LightClient
from shared.metrics import NatsMetrics
from shared.natsconn import connect, when_ready
from shared.ratelimit import TokenBucket
from shared.registry import ConnectionInfo
from shared.registry_kv import RegistryKV
from shared.room_log.nats_log import REQUEST_TIMEOUT_S, NatsRoomLog
from shared.room_log.streams import LogSettings, ensure_streams
from shared.subjects import Subjects

log = logging.getLogger(__name__)

async def ensure_missing_streams(nc: LightClient, subjects: Subjects,
                                 settings: LogSettings) -> None:
    """Create the durable namespaces' logs and the offline inbox if they do not exist yet,
    so the API works before the first gateway starts. Existing streams are left alone: the
    gateways own their configuration (replicas, retention) and update it on start."""
    try:
        await ensure_streams(nc.jetstream(timeout=REQUEST_TIMEOUT_S), subjects, settings,
                             update=False)
    except (NatsError, JetStreamError, TimeoutError) as exc:  # a gateway may win the race
        log.warning("could not create a missing stream now (%s); gateways create them", exc)


async def run(settings: RouterSettings, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    registry = CollectorRegistry()
    metrics = RouterMetrics(registry)
    nc = await connect(settings.nats_url, f"router-{settings.instance_id}",
                       NatsMetrics(registry, "router"), client=LightClient())
    assert isinstance(nc, LightClient)
    subjects = Subjects(settings.subject_prefix, settings.namespaces)
    reg = await when_ready("opening the registry", lambda: RegistryKV.open(
        nc, settings.subject_prefix, settings.gateway_ttl_s, settings.stream_replicas))
    reaper = Reaper(reg.users, reg.entry, reg.drop_gateway, lambda gw: gw in reg.live, metrics)
    reg.on_gateway_gone = reaper.gateway_gone
    await reg.watch()

    async def lookup(user: str) -> dict[str, ConnectionInfo]:
        return (await reg.entry(user)).live(reg.live)

    log_settings = LogSettings(durable=settings.namespaces.durable,
                               replicas=settings.stream_replicas)
    await ensure_missing_streams(nc, subjects, log_settings)
    room_log = NatsRoomLog(nc, subjects, log_settings)
    api = Api(Operations(lookup, room_log, gateway_kicker(nc, subjects),
                         presence_asker(nc.request, subjects), gateway_emitter(nc, subjects)),
              TokenBucket.full(settings.api_rate, settings.api_burst, loop.time()), metrics,
              settings.namespaces)
    nats_api = NatsApi(nc, subjects, api, loop.time)
    await nats_api.start()
    app = httpservice.health_app(registry, lambda: nc.is_connected and nats_api.serving)
    add_routes(app, api, settings.api_key, loop.time)
    runner = await httpservice.start(app, settings.host, settings.port)
    log.info("router %s listening on %s:%s", settings.instance_id, settings.host,
             settings.port)
    try:
        await stop.wait()
    finally:
        await nats_api.stop()
        await runner.cleanup()
        await reaper.close()
        await reg.close()
        await nc.drain()
