"""One presence replica: the I/O around :class:`presence.replica.Replica`.

**Ingest, shared.** Gateways' notices arrive on a work queue with one durable consumer; each
notice goes to one replica, which stores it in the presence store (:mod:`presence.ingest`) and
only then acknowledges it. A replica that dies holding notices has them redelivered to
another; none is lost.

**State, everywhere.** Every replica follows the whole store and folds each change into its
own :class:`~presence.replica.Replica`, so every replica answers ``room:presence``
(:mod:`presence.query`) and runs the same timers. A restarting replica adopts the store with
``restore``: nobody is announced again.

**Announcing, split.** Each event has an owner among the live replicas
(:mod:`presence.ownership`); only the owner publishes it, so every event goes out once. A
replica counts itself only once its own liveness key comes back to it, and a leaving one keeps
announcing until its ``bye`` does, so replicas folding the same changes agree on every
change's owner.

Events go into rooms on the rooms' fan-out subjects as ephemeral events (no log, no offset),
built by :mod:`presence.frames`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import Error as JetStreamError

from presence.config import config_of
from presence.ingest import fold, notice_kind, store_batch
from presence.metrics import PresenceMetrics
from presence.query import members_answer
from presence.replica import Replica
from presence.store import Change, PresenceStore
from shared.config import PresenceSettings
from shared.natsconn import when_ready
from shared.presence_queue import CONSUMER, consumer_config, ensure_queue
from shared.presence_wire import unpack
from shared.registry_kv import RegistryKV
from shared.subjects import Subjects

log = logging.getLogger(__name__)

BATCH = 256
RETRY_S = 0.5
STOP_WAIT_S = 2.0
UNREACHABLE = (NatsError, JetStreamError, TimeoutError)


class PresenceService:
    def __init__(self, nc: Client, settings: PresenceSettings, metrics: PresenceMetrics,
                 store: PresenceStore, registry: RegistryKV,
                 clock: Callable[[], float] = time.time) -> None:
        self.me = settings.instance_id
        self.settings = settings
        self.config = config_of(settings)
        self._subjects = Subjects(settings.subject_prefix, settings.namespaces)
        self.replica = Replica(self.me, self.config, self._subjects, metrics, registry.live,
                               window=2 * settings.replica_ttl_s)
        self.ready = False
        self._nc = nc
        self._js = nc.jetstream(timeout=5.0)
        self._metrics = metrics
        self._store = store
        self._registry = registry
        self._clock = clock
        self._wake = asyncio.Event()
        self._outgoing: deque[tuple[str, bytes]] = deque()
        self._send_wake = asyncio.Event()
        self._sent = asyncio.Event()
        self._sent.set()
        self._left = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await when_ready("creating the presence queue", lambda: ensure_queue(
            self._js, self._subjects, self.settings.stream_replicas))
        self._registry.on_gateway_gone = self._gateway_gone
        caught_up = asyncio.Event()
        self._spawn(self._send())
        self._spawn(self._follow(caught_up))
        await caught_up.wait()
        await when_ready("announcing this replica", lambda: self._store.beat(
            self.me, self.settings.replica_ttl_s))
        await self._nc.subscribe(self._subjects.presence_query(), queue="presence",
                                 cb=self._on_query)
        self._spawn(self._beat())
        self._spawn(self._timers())
        self._spawn(self._ingest())
        self.ready = True

    async def stop(self) -> None:
        """Leave the replica set first and keep announcing until our own ``bye`` comes back
        through the store: from that point in the store's order every replica owns our
        share, so nothing falls between us. Then send what is queued and stop."""
        self.ready = False
        self._left.clear()
        with contextlib.suppress(*UNREACHABLE):
            await self._store.leave(self.me)
            await asyncio.wait_for(self._left.wait(), STOP_WAIT_S)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._sent.wait(), STOP_WAIT_S)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self._tasks.append(task)
        task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)

    # --- ingest: work queue -> store ------------------------------------------------------

    async def _ingest(self) -> None:
        def subscribe() -> Any:
            return self._js.pull_subscribe(
                self._subjects.presence_events(), durable=CONSUMER,
                stream=self._subjects.presence_stream(), config=consumer_config())

        sub = await when_ready("subscribing to the presence queue", subscribe, within=3_600)
        try:
            while True:
                try:
                    msgs = await sub.fetch(BATCH, timeout=1.0)
                except (NatsTimeoutError, TimeoutError):
                    continue
                except (NatsError, JetStreamError) as exc:
                    log.warning("presence work queue unreadable (%s); retrying", exc)
                    await asyncio.sleep(RETRY_S)
                    continue
                await self._store_batch(msgs)
        finally:
            with contextlib.suppress(NatsError, TimeoutError):
                await sub.unsubscribe()  # a pull subscription left behind stalls a drain

    async def _store_batch(self, msgs: list[Msg]) -> None:
        started = time.perf_counter()
        notices = [notice for msg in msgs for notice in unpack(msg.data)]
        for notice in notices:
            self._metrics.events.labels(notice_kind(notice)).inc()
        failed = await store_batch(self._store, fold(notices))
        if failed:
            log.warning("%d presence writes failed (%s); the batch will be redelivered",
                        len(failed), failed[0])
            await asyncio.gather(*(msg.nak(delay=RETRY_S) for msg in msgs),
                                 return_exceptions=True)
            return
        await asyncio.gather(*(msg.ack() for msg in msgs), return_exceptions=True)
        self._metrics.ingest_seconds.observe(time.perf_counter() - started)

    # --- following the store --------------------------------------------------------------

    async def _follow(self, caught_up: asyncio.Event) -> None:
        while True:
            try:
                await self._follow_once(caught_up)
            except UNREACHABLE as exc:
                log.warning("presence bucket watch ended (%s); watching again", exc)
            await asyncio.sleep(RETRY_S)

    async def _follow_once(self, caught_up: asyncio.Event) -> None:
        initial: list[Change] | None = [] if not caught_up.is_set() else None
        async for change in self._store.follow():
            if change is None:
                if initial is not None:
                    self.replica.restore(initial, self._clock())
                    initial = None
                    caught_up.set()
                    self._flush()
                continue
            if initial is not None:
                initial.append(change)
                continue
            self.replica.apply(change, self._clock())
            if self.replica.take_left():
                self._left.set()
            self._flush()

    def _gateway_gone(self, gateway: str) -> None:
        self.replica.gateway_gone(gateway, self._clock())
        self._flush()

    # --- time -----------------------------------------------------------------------------

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.replica_ttl_s / 3)
            try:
                await self._store.beat(self.me, self.settings.replica_ttl_s)
            except UNREACHABLE as exc:
                log.warning("replica liveness refresh failed: %s", exc)

    async def _timers(self) -> None:
        while True:
            deadline = self.replica.state.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            self.replica.tick(self._clock())
            self._flush(rearm=False)

    # --- out: frames and clean-ups --------------------------------------------------------

    def _flush(self, rearm: bool = True) -> None:
        """Queue what the replica computed and wake the sender; with ``rearm``, the timers
        too (a change may have moved the next deadline; the timers' own tick must not, or
        they would spin)."""
        if rearm:
            self._wake.set()
        for gateway, boot in self.replica.take_drops():
            self._spawn(self._drop_later(gateway, boot))
        outgoing = self.replica.take_outgoing()
        if outgoing:
            self._outgoing.extend(outgoing)
            self._sent.clear()
            self._send_wake.set()

    async def _send(self) -> None:
        """Publish announced events in the order they were computed (core NATS: they are
        ephemeral, and a gateway without members of the room simply has no subscription)."""
        outgoing = self._outgoing
        while True:
            await self._send_wake.wait()
            self._send_wake.clear()
            while outgoing:
                subject, body = outgoing.popleft()
                try:
                    await self._nc.publish(subject, body)
                except (NatsError, TimeoutError) as exc:
                    log.warning("a presence event was not published: %s", exc)
            self._sent.set()

    async def _drop_later(self, gateway: str, boot: str) -> None:
        """The owner of a dead run deletes its records once every replica has closed them."""
        await asyncio.sleep(self.config.grace + 1.0)
        if not self.replica.owns_run(gateway, boot):
            return
        try:
            dropped = await self._store.drop_instance(gateway, boot)
            log.info("dropped %d records of gateway %s (boot %s)", dropped, gateway, boot[:6])
        except UNREACHABLE as exc:
            log.warning("could not drop a dead gateway's records: %s", exc)

    # --- queries --------------------------------------------------------------------------

    async def _on_query(self, msg: Msg) -> None:
        answer = members_answer(msg.data, self.replica.state, self.ready,
                                self.settings.list_max, self.settings.namespaces.presence)
        self._metrics.queries.labels("ok" if answer.get("ok") else "error").inc()
        if msg.reply:
            with contextlib.suppress(NatsError, TimeoutError):
                await msg.respond(orjson.dumps(answer))
