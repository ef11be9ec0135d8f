"""The gateway process: one port for Socket.IO, health and metrics, on the gateway's own HTTP/1.1
and WebSocket layers (``gateway/http_server.py``, ``gateway/websocket_protocol.py``).

The router answers ``/healthz``, ``/readyz`` and ``/metrics``; everything else goes to the
Socket.IO endpoint, which runs the upgrade decision, so refused upgrades get their HTTP status
before any WebSocket exists. There is no WebSocket compression and no WebSocket-level
keepalive: frames are encoded once and written as bytes, and Engine.IO does its own heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Mapping

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.errors import Error as JetStreamError
from prometheus_client import CollectorRegistry

from gateway.actions import NamespaceSocket
from gateway.admission import Admission
from gateway.broker import Broker
from gateway.channel import Channel
from gateway.configuration import (
    handshake_policy,
    lease_seconds,
    log_settings,
    namespace_chains,
    session_config,
    settle_seconds,
    tls_context,
    verifier_for,
)
from gateway.connection import Connection
from gateway.drain import close_gap
from gateway.durable import DurableSockets
from gateway.engine_endpoint import EngineEndpoint
from gateway.fanout import Fanout
from gateway.hook_client import HookClient
from gateway.http import Request, Response, Router, text_response
from gateway.http_server import HttpProtocol
from gateway.lifecycle import Lifecycle
from gateway.nats_broker import NatsBroker
from gateway.nats_client import FanoutClient
from gateway.outbox import Flusher, Outbox
from gateway.polling import PollingChannel
from gateway.polling_forward import PollingForwarder, get_timeout_s
from gateway.presence_emitter import PresenceEmitter
from gateway.recovery_store import RecoveryStore
from gateway.session import Session
from gateway.socket_emit import serve_emits
from gateway.takeover import Takeovers
from gateway.takeover_state import SessionState
from gateway.websocket_protocol import CLOSE_TIMEOUT_S
from shared.config import GatewaySettings
from shared.jwtauth import Identity
from shared.metrics import CONTENT_TYPE, GatewayMetrics, WriteStats, render
from shared.natsconn import connect, when_ready
from shared.presence_queue import ensure_queue
from shared.protocol.errors import CloseCode, ErrorCode, error_ack
from shared.registry_kv import RegistryKV
from shared.room_log.nats_log import REQUEST_TIMEOUT_S
from shared.room_log.streams import ensure_streams
from shared.sids import RANDOM_BYTES, owner_of, sid_suffix
from shared.subjects import Subjects

log = logging.getLogger(__name__)

LAPSE_RESYNC_DELAY_S = 1.0
LISTEN_BACKLOG = 4096  # a dead or drained gateway's clients reconnect at once (capped by somaxconn)
GOING_AWAY = 1001


def new_id() -> str:
    """20 url-safe characters, like the reference server's ids."""
    return secrets.token_urlsafe(15)


async def serve_kicks(nc: Client, subjects: Subjects, gateway_id: str,
                      admission: Admission) -> None:
    """Answer the router's kick requests for users connected here."""

    async def on_kick(msg: Msg) -> None:
        try:
            request = orjson.loads(msg.data)
            user, reason = str(request["user"]), str(request.get("reason") or "kicked")
        except (orjson.JSONDecodeError, KeyError, TypeError):
            await msg.respond(orjson.dumps(error_ack(ErrorCode.BAD_REQUEST,
                                                     "expected {user, reason?}")))
            return
        kicked = await admission.kick(user, reason)
        await msg.respond(orjson.dumps({"ok": True, "kicked": kicked}))

    await nc.subscribe(subjects.gateway_kick(gateway_id), cb=on_kick)


async def serve_gateway_requests(nc: Client, subjects: Subjects, settings: GatewaySettings,
                                 gateway: Gateway) -> None:
    """What other processes ask this gateway: the router's kicks and emits, the polling
    requests of this gateway's sessions that landed elsewhere (this one forwards theirs), and
    the takeovers of its sessions whose upgrade landed elsewhere."""
    await serve_kicks(nc, subjects, settings.instance_id, gateway.admission)
    endpoint = gateway.endpoint
    takeovers = endpoint.takeovers = Takeovers(
        nc, subjects, settings.instance_id, endpoint.polling.get, settle_seconds(settings),
        gateway.metrics)
    await serve_emits(nc, subjects, settings.instance_id, gateway.socket, takeovers.moved.get)
    endpoint.forwarder = PollingForwarder(
        nc, subjects, settings.instance_id, endpoint.polling.get,
        get_timeout_s(settings.ping_interval_ms, settings.ping_timeout_ms), gateway.metrics)
    endpoint.forwarder.arriving = endpoint.arriving.get
    await endpoint.forwarder.start()
    endpoint.adopt = gateway.adopt
    await takeovers.start()


class Gateway:
    def __init__(self, settings: GatewaySettings, broker: Broker, nc: Client | None,
                 metrics: GatewayMetrics | None = None,
                 store: RecoveryStore | None = None,
                 registry: RegistryKV | None = None,
                 presence: PresenceEmitter | None = None) -> None:
        self.settings = settings
        self.presence = presence
        self.hooks: HookClient | None = None
        """Sends the application's hook requests (``None``: none can be reached)."""
        self.lifecycle: Lifecycle | None = None
        self.metrics = metrics or GatewayMetrics(CollectorRegistry())
        self.verifier = verifier_for(settings)
        self.policy = handshake_policy(settings, self.verifier)
        self.config = session_config(settings)
        self.namespaces = namespace_chains(settings)
        self.broker = broker
        self.nc = nc
        self.fanout = Fanout(broker, self.metrics, settings.fanout_batch,
                             settings.namespaces.durable)
        self.admission = Admission(registry, settings.instance_id,
                                   settings.max_user_connections, self.metrics,
                                   settings.max_opening)
        self.durable = DurableSockets(self.fanout, store, self.metrics, settings.send_budget_bytes,
                                 lease_seconds(settings), settings.recovery_window_s)
        self.connections: set[Connection] = set()
        self.draining = False
        self._drained = asyncio.Event()
        self._flusher: Flusher | None = None
        self._sid_suffix = sid_suffix(settings.instance_id)
        self.server: asyncio.Server | None = None
        self.endpoint = EngineEndpoint(self.policy, settings.max_payload, self.metrics,
                                       self._open, self.new_sid, lambda: self.draining,
                                       settings.instance_id, owner_of)
        self.router = Router(self.endpoint)
        self.router.add("/healthz", lambda _: text_response(200, "ok\n"))
        self.router.add("/readyz", self.readyz)
        self.router.add("/metrics", self.metrics_page)
        WriteStats(self.metrics.registry, self._write_stats)

    def _write_stats(self) -> tuple[int, int, int]:
        flusher = self._flusher
        if flusher is None:
            return 0, 0, 0
        return flusher.passes, flusher.writes, flusher.frames

    def ready(self) -> bool:
        return (self.server is not None and not self.draining
                and (self.nc is None or self.nc.is_connected))

    def readyz(self, _: Request) -> Response:
        if self.ready():
            return text_response(200, "ready\n")
        return text_response(503, "not ready\n")

    def metrics_page(self, _: Request) -> Response:
        return Response(200, render(self.metrics.registry), (("Content-Type", CONTENT_TYPE),))

    def new_sid(self) -> str:
        """A sid naming this gateway, so any other can find it (polling, server API)."""
        return secrets.token_urlsafe(RANDOM_BYTES) + self._sid_suffix

    def socket(self, sid: str) -> tuple[Outbox, NamespaceSocket] | None:
        """The open namespace socket with ``sid`` and its outbox. A scan: an emit to one
        socket is rare beside fan-out, and an index would cost every connect."""
        for connection in self.connections:
            for socket in connection.session.sockets.values():
                if socket.sid == sid and socket.nsp in connection.members:
                    return connection.outbox, socket
        return None

    def _open(self, channel: Channel, identity: Identity | None, sid: str,
              upgrades: tuple[str, ...], headers: Mapping[str, str] | None = None
              ) -> Connection:
        """``headers``: the handshake's, of which the session keeps those a connect hook
        is to see (``hook_headers``)."""
        connection = self._connection(channel, sid, identity, headers)
        connection.start(upgrades)
        return connection

    def _connection(self, channel: Channel, sid: str, identity: Identity | None,
                    headers: Mapping[str, str] | None) -> Connection:
        """A connection over ``channel`` with a fresh session core, not started yet."""
        loop = asyncio.get_running_loop()
        session = Session(sid, identity, self.config, self.namespaces, self.verifier,
                          self.new_sid, loop.time(), wall_clock=time.time, headers=headers)
        if self._flusher is None:
            self._flusher = Flusher(loop, self.settings.write_delay_ms / 1000)
        connection = Connection(channel, session, self.fanout, self.durable, self.admission,
                                self.broker, self.metrics,
                                self._flusher, self.settings.send_budget_bytes,
                                self.presence, self._finished, self.hooks, self.lifecycle)
        self.connections.add(connection)
        return connection

    async def adopt(self, channel: PollingChannel, state: SessionState) -> bool:
        """A session another gateway handed over (:mod:`gateway.takeover`), carried on here
        over ``channel``; closed, for the client to reconnect and recover, if it cannot be."""
        connection = self._connection(channel, state.sid, state.upgrade_identity, state.headers)
        channel.handler = connection
        if await connection.take_over(state):
            return True
        connection.close(CloseCode.TRY_AGAIN_LATER, "taken-over session not resumed")
        return False

    def _finished(self, connection: Connection) -> None:
        self.connections.discard(connection)
        self.endpoint.finished(connection.eio_sid)
        if self.draining and not self.connections:
            self._drained.set()

    async def start(self) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: HttpProtocol(self.router, self.settings.max_payload),
            self.settings.host,
            self.settings.port,
            ssl=tls_context(self.settings),
            backlog=LISTEN_BACKLOG,
        )
        return self.server

    async def drain(self) -> None:
        """Stop taking upgrades (503, and /readyz 503), then close every connection with 1012
        at the drain rate, spread over the drain window at most (:func:`close_gap`), so
        clients reconnect and recover on other gateways without arriving all at once.
        Returns when none is left or the window is over."""
        self.draining = True
        window = self.settings.drain_window_s
        connections = list(self.connections)
        gap = close_gap(len(connections), window, self.settings.drain_rate)
        log.info("draining %d connections over %.1fs", len(connections),
                 gap * len(connections))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + window
        start = loop.time()
        for index, connection in enumerate(connections):
            connection.close(CloseCode.DRAIN, "gateway draining")
            if gap:  # on a schedule, so time spent closing does not stretch the window
                await asyncio.sleep(max(0.0, start + (index + 1) * gap - loop.time()))
        if self.connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), max(0.1, deadline - loop.time()))

    async def liveness_lapsed(self, registry: RegistryKV) -> None:
        """Our own liveness key expired while we lived (a long NATS stall): put it back and,
        once the cluster has seen it, give presence our sockets again."""
        log.warning("this gateway's liveness key lapsed; restoring it")
        try:
            await registry.refresh(self.settings.instance_id)
        except (NatsError, JetStreamError, TimeoutError) as exc:
            log.warning("could not restore the liveness key now (%s); the beat will", exc)
        await asyncio.sleep(LAPSE_RESYNC_DELAY_S)
        if self.presence is not None:
            self.presence.resync(socket for connection in self.connections
                                 for socket in connection.session.sockets.values())

    async def stop(self) -> None:
        """Stop listening, close what is still open (1001) and let those sessions end while
        NATS is still there to record them, then close the NATS side."""
        self.draining = True
        if self.server is not None:
            self.server.close()
        for connection in list(self.connections):
            connection.close(GOING_AWAY, "gateway stopping")
        if self.connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), CLOSE_TIMEOUT_S + 1.0)
        if self.lifecycle is not None:
            await self.lifecycle.close()
        if self.presence is not None:
            await self.presence.close()
        await self.durable.close()
        if self.hooks is not None:
            self.hooks.close()
        await self.broker.close()
        if self.nc is not None and not self.nc.is_closed:
            await self.nc.drain()


async def _open_state(settings: GatewaySettings, client: FanoutClient, subjects: Subjects
                      ) -> tuple[RecoveryStore, RegistryKV, PresenceEmitter]:
    """Everything the gateway keeps in NATS, each step retried until NATS is ready: the room
    logs and inbox, the recovery bucket, the registry (with this gateway in it) and the
    presence queue."""
    await when_ready("creating the room logs and the inbox", lambda: ensure_streams(
        client.jetstream(timeout=REQUEST_TIMEOUT_S), subjects, log_settings(settings)))
    store = await when_ready("opening the recovery bucket", lambda: RecoveryStore.open(
        client, subjects.session_bucket(),
        settings.recovery_window_s + lease_seconds(settings), settings.stream_replicas))
    registry = await when_ready("opening the registry", lambda: RegistryKV.open(
        client, settings.subject_prefix, settings.gateway_ttl_s, settings.stream_replicas))
    boot = new_id()
    await when_ready("registering this gateway",
                     lambda: registry.beat(settings.instance_id, boot))
    await registry.watch()
    await when_ready("creating the presence queue", lambda: ensure_queue(
        client.jetstream(timeout=5.0), subjects, settings.stream_replicas))
    presence = PresenceEmitter(client.jetstream(timeout=5.0), subjects.presence_events(),
                               settings.instance_id, boot, settings.namespaces.presence,
                               client.request, subjects.presence_query())
    presence.start()
    return store, registry, presence


async def open_hooks(client: FanoutClient, subjects: Subjects, settings: GatewaySettings,
                     metrics: GatewayMetrics) -> HookClient:
    """The application hooks' client, with a reply inbox per hook timeout of the table."""
    hooks = HookClient(client, subjects, settings.hook_max_in_flight, metrics)
    await hooks.start(spec.hook_timeout_ms for spec in settings.namespaces.values()
                      if spec.hooks or spec.auth == "hook")
    return hooks


async def open_application(gateway: Gateway, client: FanoutClient, subjects: Subjects,
                           settings: GatewaySettings) -> None:
    """What the application's namespaces need: the hooks' client, and the lifecycle stream's
    publisher when some namespace has hooks."""
    gateway.hooks = await open_hooks(client, subjects, settings, gateway.metrics)
    hooked = frozenset(name for name, spec in settings.namespaces.items() if spec.hooks)
    if hooked:
        gateway.lifecycle = Lifecycle(client.jetstream(), subjects, settings.instance_id,
                                      hooked, gateway.metrics.lifecycle_failures)


async def run(settings: GatewaySettings, stop: asyncio.Event) -> None:
    metrics = GatewayMetrics(CollectorRegistry())
    client = FanoutClient()
    gateway: Gateway | None = None

    def disconnected() -> None:
        if gateway is not None:
            gateway.fanout.disconnected()

    def reconnected() -> None:
        if gateway is not None:
            gateway.fanout.reconnected()

    nc = await connect(settings.nats_url, f"gateway-{settings.instance_id}", metrics.nats,
                       client, disconnected, reconnected)
    subjects = Subjects(settings.subject_prefix, settings.namespaces)
    broker = NatsBroker(client, subjects, log_settings(settings))
    await broker.start()
    store, registry, presence = await _open_state(settings, client, subjects)
    gateway = Gateway(settings, broker, nc, metrics, store, registry, presence)
    await open_application(gateway, client, subjects, settings)
    lapses: set[asyncio.Task[None]] = set()

    def gateway_gone(gone: str) -> None:
        if gone == settings.instance_id and gateway is not None:
            task = asyncio.get_running_loop().create_task(gateway.liveness_lapsed(registry))
            lapses.add(task)
            task.add_done_callback(lapses.discard)

    registry.on_gateway_gone = gateway_gone
    await serve_gateway_requests(client, subjects, settings, gateway)
    await gateway.start()
    log.info("gateway %s listening on %s:%s", settings.instance_id, settings.host,
             settings.port)
    try:
        await stop.wait()
        await gateway.drain()
    finally:
        await gateway.stop()
        await registry.close()
