"""One presence replica: the I/O around :class:`presence.state.PresenceState`.

**Ingest, shared.** Gateways' notices arrive on a work queue with one durable consumer; each
notice goes to one replica, which stores it in the presence bucket (records by compare-and-set,
newest wins) and only then acknowledges it. A replica that dies holding notices has them
redelivered to another; none is lost.

**State, everywhere.** Every replica follows the whole bucket and folds each change into its
own :class:`~presence.state.PresenceState` (``merge`` is newest-wins, so the order changes
arrive in does not matter), so every replica holds the same view, answers ``room:presence``,
and runs the same timers (grace, typing TTL, summaries). A restarting replica adopts the
bucket with ``restore``: nobody is announced again.

**Announcing, split.** Each event has an owner among the live replicas (rendezvous hashing,
:mod:`presence.ownership`); only the owner publishes it, so every event goes out once. The set
of replicas changes only as their liveness keys come and go in the bucket — a replica counts
itself only once its own key comes back to it, and a leaving one keeps announcing until its
``bye`` does — so replicas folding the same changes agree on every change's owner. Events
a replica computed but did not own are kept for a few seconds: when an owner's liveness key
expires (it died without leaving), the events it owned since its last refresh are announced
again by their new owners. That window is the one place an event can go out twice; clients
treat ``presence:update`` and typing events as idempotent state.

**Gateways.** A gateway whose liveness key expires, or that restarts under the same id with a
new boot, has its sockets closed in the state at that moment: their users go offline after
the grace unless they reconnected elsewhere, in which case nothing is announced at all. The
owner of a dead gateway run deletes its records from the bucket afterwards.

Events go into rooms on the rooms' fan-out subjects as ephemeral events (no log, no offset):
``presence:update`` and ``typing:start``/``typing:stop``, exactly as the contract names them.
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

from presence.metrics import PresenceMetrics
from presence.ownership import event_key, owner
from presence.state import (
    Conn,
    Event,
    PresenceConfig,
    PresenceState,
    RoomChange,
    RoomCount,
    UserStatus,
)
from presence.store import Change, PresenceStore
from shared.config import PresenceSettings
from shared.natsconn import when_ready
from shared.presence_queue import CONSUMER, consumer_config, ensure_queue
from shared.presence_wire import (
    PRESENCE_NAMESPACES,
    GatewayBoot,
    Notice,
    SocketRecord,
    TypingNotice,
    decode,
    instance_of,
    room_key,
    split_room_key,
    unpack,
)
from shared.protocol.events import PRESENCE_UPDATE, TYPING_START, TYPING_STOP
from shared.registry_kv import RegistryKV
from shared.subjects import Subjects, is_valid_room_name

log = logging.getLogger(__name__)

BATCH = 256
RETRY_S = 0.5
STOP_WAIT_S = 2.0


def config_of(settings: PresenceSettings) -> PresenceConfig:
    return PresenceConfig(grace=settings.grace_s, typing_ttl=settings.typing_ttl_s,
                          big_room=settings.big_room,
                          summary_interval=settings.summary_interval_s,
                          tombstone_ttl=max(60.0, 2 * settings.grace_s))


class PresenceService:
    def __init__(self, nc: Client, settings: PresenceSettings, metrics: PresenceMetrics,
                 store: PresenceStore, registry: RegistryKV,
                 clock: Callable[[], float] = time.time) -> None:
        self.me = settings.instance_id
        self.settings = settings
        self.config = config_of(settings)
        self.state = PresenceState(self.config)
        self.replicas: set[str] = set()  # as the bucket says, this replica included
        self.ready = False
        self._nc = nc
        self._js = nc.jetstream(timeout=5.0)
        self._subjects = Subjects(settings.subject_prefix)
        self._metrics = metrics
        self._store = store
        self._registry = registry
        self._clock = clock
        self._boots: dict[str, tuple[float, str]] = {}  # gateway -> its newest run
        self._instances: dict[str, set[str]] = {}
        self._last_beat: dict[str, float] = {}
        self._not_mine: deque[tuple[float, str, Event]] = deque()
        self._wake = asyncio.Event()
        self._outgoing: deque[tuple[str, bytes]] = deque()
        self._send_wake = asyncio.Event()
        self._sent = asyncio.Event()
        self._sent.set()
        self._left = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await when_ready("creating the presence queue", lambda: ensure_queue(
            self._js, self._subjects, self.settings.stream_replicas))
        self._registry.on_gateway_gone = self._gateway_gone
        caught_up = asyncio.Event()
        self._tasks.append(loop.create_task(self._send()))
        self._tasks.append(loop.create_task(self._follow(caught_up)))
        await caught_up.wait()
        await when_ready("announcing this replica", lambda: self._store.beat(
            self.me, self.settings.replica_ttl_s))
        await self._nc.subscribe(self._subjects.presence_query(), queue="presence",
                                 cb=self._on_query)
        self._tasks.append(loop.create_task(self._beat()))
        self._tasks.append(loop.create_task(self._timers()))
        self._tasks.append(loop.create_task(self._ingest()))
        self.ready = True

    async def stop(self) -> None:
        """Leave the replica set first and keep announcing until our own ``bye`` comes back
        through the bucket: from that point in the bucket's order every replica owns our
        share, so nothing falls between us. Then send what is queued and stop."""
        self.ready = False
        self._left.clear()
        with contextlib.suppress(NatsError, JetStreamError, TimeoutError):
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

    # --- ingest: work queue -> bucket -----------------------------------------------------

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
        records: dict[tuple[str, str], SocketRecord] = {}
        typing: dict[tuple[str, str], TypingNotice] = {}
        boots: list[GatewayBoot] = []
        notices = [notice for msg in msgs for notice in unpack(msg.data)]
        for notice in notices:
            self._metrics.events.labels(_kind(notice)).inc()
            if isinstance(notice, SocketRecord):
                key = (notice.instance, notice.conn)
                if key not in records or records[key].seq < notice.seq:
                    records[key] = notice
            elif isinstance(notice, TypingNotice):
                typing[(notice.room, notice.user)] = notice
            elif isinstance(notice, GatewayBoot):
                boots.append(notice)
        writes: list[Any] = [self._store.store_record(r) for r in records.values()]
        writes += [self._store.store_typing(t) for t in typing.values()]
        writes += [self._store.store_boot(b) for b in boots]
        results = await asyncio.gather(*writes, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            log.warning("%d presence writes failed (%s); the batch will be redelivered",
                        len(failed), failed[0])
            await asyncio.gather(*(msg.nak(delay=RETRY_S) for msg in msgs),
                                 return_exceptions=True)
            return
        await asyncio.gather(*(msg.ack() for msg in msgs), return_exceptions=True)
        self._metrics.ingest_seconds.observe(time.perf_counter() - started)

    # --- following the bucket -------------------------------------------------------------

    async def _follow(self, caught_up: asyncio.Event) -> None:
        while True:
            try:
                await self._follow_once(caught_up)
            except (NatsError, JetStreamError, TimeoutError) as exc:
                log.warning("presence bucket watch ended (%s); watching again", exc)
            await asyncio.sleep(RETRY_S)

    async def _follow_once(self, caught_up: asyncio.Event) -> None:
        initial: list[Change] | None = [] if not caught_up.is_set() else None
        async for change in self._store.follow():
            if change is None:
                if initial is not None:
                    self._restore(initial)
                    initial = None
                    caught_up.set()
                continue
            if initial is not None:
                initial.append(change)
            else:
                self._apply(change)

    def _restore(self, changes: list[Change]) -> None:
        now = self._clock()
        records: dict[tuple[str, str], Conn] = {}
        dead: set[tuple[str, str]] = set()
        found: list[SocketRecord] = []
        for change in changes:
            notice = decode(change.value) if change.value is not None else None
            if change.kind == "g" and isinstance(notice, GatewayBoot):
                self._newer_run(notice.gateway, notice.boot, notice.stamp)
            elif change.kind == "c" and isinstance(notice, SocketRecord):
                found.append(notice)
                self._newer_run(notice.gateway, notice.boot, notice.stamp)
            elif change.kind == "r" and change.value == b"1":
                self._replica_seen(change.parts[0], now)
        for record in found:
            self._instances.setdefault(record.gateway, set()).add(record.boot)
            if record.alive and not self._instance_live(record.gateway, record.boot):
                dead.add((record.gateway, record.boot))
                continue
            records[(record.instance, record.conn)] = _conn(record)
        self.state = PresenceState.restore(records, now, self.config)
        self._metrics.online.set(self.state.online_count())
        for gateway, boot in dead:
            self._drop_later(gateway, boot)
        log.info("presence restored %d sockets from the bucket", len(records))

    def _apply(self, change: Change) -> None:
        now = self._clock()
        if change.kind == "r":
            replica = change.parts[0]
            if change.value == b"1":
                self._replica_seen(replica, now)
            elif replica in self.replicas:
                self._replica_gone(replica, died=change.value is None)
            return
        if change.value is None:
            return  # an expired tombstone or typing notice, a purged dead run: nothing to do
        notice = decode(change.value)
        if change.kind == "c" and isinstance(notice, SocketRecord):
            self._instances.setdefault(notice.gateway, set()).add(notice.boot)
            record = notice
            if record.gateway in self._registry.live:
                self._take_run(record.gateway, record.boot, record.stamp, now)
            if record.alive and not self._instance_live(record.gateway, record.boot):
                record = SocketRecord(record.gateway, record.boot, record.conn, record.user,
                                      record.rooms, False, record.seq, record.stamp)
            self._announce(self.state.merge({(record.instance, record.conn): _conn(record)},
                                            now))
        elif change.kind == "t" and isinstance(notice, TypingNotice):
            if notice.active:
                self._announce(self.state.typing_start(notice.room, notice.user, now))
            else:
                self._announce(self.state.typing_stop(notice.room, notice.user, now))
        elif change.kind == "g" and isinstance(notice, GatewayBoot):
            self._take_run(notice.gateway, notice.boot, notice.stamp, now)
        self._wake.set()

    # --- gateways and replicas ------------------------------------------------------------

    def _instance_live(self, gateway: str, boot: str) -> bool:
        current = self._boots.get(gateway)
        return gateway in self._registry.live and (current is None or current[1] == boot)

    def _newer_run(self, gateway: str, boot: str, stamp: float) -> bool:
        """Note ``boot`` as the gateway's current run if it is newer than the one known (a
        restarted gateway's records all carry later stamps than its old run's)."""
        current = self._boots.get(gateway)
        if current is not None and (current[1] == boot or stamp <= current[0]):
            return False
        self._boots[gateway] = (stamp, boot)
        return current is not None

    def _take_run(self, gateway: str, boot: str, stamp: float, now: float) -> None:
        """A newer run of a gateway replaces the old one: the old run's sockets are closed
        (whichever arrives first, the new run's boot notice or one of its records)."""
        if self._newer_run(gateway, boot, stamp):
            for old in sorted(self._instances.get(gateway, set()) - {boot}):
                self._close_instance(gateway, old, now)

    def _gateway_gone(self, gateway: str) -> None:
        now = self._clock()
        for boot in sorted(self._instances.get(gateway, set())):
            self._close_instance(gateway, boot, now)
        self._wake.set()

    def _close_instance(self, gateway: str, boot: str, now: float) -> None:
        instance = instance_of(gateway, boot)
        if instance in self.state.gateways():
            log.info("gateway %s (boot %s) is gone; closing its sockets", gateway, boot[:6])
            self._metrics.gateways_down.inc()
            self._announce(self.state.gateway_down(instance, now))
        self._instances.get(gateway, set()).discard(boot)
        self._drop_later(gateway, boot)

    def _drop_later(self, gateway: str, boot: str) -> None:
        """The owner of a dead run deletes its records once every replica has closed them."""
        if owner(f"g\0{gateway}\0{boot}", self.replicas) != self.me:
            return

        async def drop() -> None:
            await asyncio.sleep(self.config.grace + 1.0)
            try:
                dropped = await self._store.drop_instance(gateway, boot)
                log.info("dropped %d records of gateway %s (boot %s)", dropped, gateway,
                         boot[:6])
            except (NatsError, JetStreamError, TimeoutError) as exc:
                log.warning("could not drop a dead gateway's records: %s", exc)

        task = asyncio.get_running_loop().create_task(drop())
        self._tasks.append(task)
        task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)

    def _replica_seen(self, replica: str, now: float) -> None:
        """Replicas join the owner set only as their liveness key shows up in the bucket, so
        every replica changes owners at the same point of the bucket's order."""
        first = replica not in self.replicas
        if first:
            log.info("presence replica %s joined", replica)
        self.replicas.add(replica)
        self._last_beat[replica] = now
        self._metrics.replicas.set(len(self.replicas))
        if first and len(self.replicas) == 1:  # events computed while nobody owned them
            orphans = [event for _, was, event in self._not_mine if not was]
            self._not_mine = deque(item for item in self._not_mine if item[1])
            self._announce(orphans)

    def _replica_gone(self, replica: str, died: bool) -> None:
        if replica == self.me:
            self._left.set()
        self.replicas.discard(replica)
        self._metrics.replicas.set(len(self.replicas))
        since = self._last_beat.pop(replica, 0.0)
        log.info("presence replica %s %s", replica, "died" if died else "left")
        if not died or replica == self.me:
            return
        again = [event for at, was, event in self._not_mine if was == replica and at >= since]
        self._metrics.reannounced.inc(len(again))
        self._announce(again)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.replica_ttl_s / 3)
            try:
                await self._store.beat(self.me, self.settings.replica_ttl_s)
            except (NatsError, JetStreamError, TimeoutError) as exc:
                log.warning("replica liveness refresh failed: %s", exc)

    # --- time -----------------------------------------------------------------------------

    async def _timers(self) -> None:
        while True:
            deadline = self.state.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            self._announce(self.state.tick(self._clock()))

    # --- announcing -----------------------------------------------------------------------

    def _announce(self, events: list[Event]) -> None:
        if not events:
            return
        now = self._clock()
        horizon = now - 2 * self.settings.replica_ttl_s
        kept = self._not_mine
        while kept and kept[0][0] < horizon:
            kept.popleft()
        for event in events:
            mine = owner(event_key(event), self.replicas) if self.replicas else ""
            if mine != self.me:
                kept.append((now, mine, event))
                continue
            frames = self._frames(event)
            for nsp, room, body in frames:
                self._outgoing.append((self._subjects.fanout(nsp, room), body))
            if frames:
                self._metrics.updates.labels(_update_kind(event)).inc()
        self._metrics.online.set(self.state.online_count())
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

    def _frames(self, event: Event) -> list[tuple[str, str, bytes]]:
        if isinstance(event, UserStatus):
            body = orjson.dumps([PRESENCE_UPDATE, {"user": event.user, "status": event.status}])
            rooms = [split_room_key(key) for key in sorted(event.rooms)]
            return [(r[0], r[1], body) for r in rooms if r is not None]
        target = split_room_key(event.room)
        if target is None:
            return []
        nsp, room = target
        if isinstance(event, RoomChange):
            data: dict[str, Any] = {"room": room, "user": event.user, "status": event.status}
            return [(nsp, room, orjson.dumps([PRESENCE_UPDATE, data]))]
        if isinstance(event, RoomCount):
            data = {"room": room, "count": event.count}
            return [(nsp, room, orjson.dumps([PRESENCE_UPDATE, data]))]
        name = TYPING_START if event.started else TYPING_STOP
        return [(nsp, room, orjson.dumps([name, {"room": room, "user": event.user}]))]

    # --- queries --------------------------------------------------------------------------

    async def _on_query(self, msg: Msg) -> None:
        answer = self.members_answer(msg.data)
        self._metrics.queries.labels("ok" if answer.get("ok") else "error").inc()
        if msg.reply:
            with contextlib.suppress(NatsError, TimeoutError):
                await msg.respond(orjson.dumps(answer))

    def members_answer(self, raw: bytes) -> dict[str, Any]:
        """``{"namespace", "room"}`` → ``{ok, room, users, count, truncated}``."""
        try:
            request = orjson.loads(raw)
        except orjson.JSONDecodeError:
            request = None
        if not isinstance(request, dict):
            return _error("bad_request", "expected a JSON object {namespace, room}")
        nsp, room = request.get("namespace", "/chat"), request.get("room")
        if not isinstance(nsp, str) or nsp not in PRESENCE_NAMESPACES:
            return _error("bad_request", "presence is kept for namespace /chat only")
        if not is_valid_room_name(room):
            return _error("bad_request", "room must be 1-128 characters of [A-Za-z0-9_:@-]")
        assert isinstance(nsp, str) and isinstance(room, str)
        if not self.ready:
            return _error("unavailable", "presence is starting; try again")
        members = sorted(self.state.members(room_key(nsp, room)))
        limit = self.settings.list_max
        return {"ok": True, "room": room, "users": members[:limit], "count": len(members),
                "truncated": len(members) > limit}


def _conn(record: SocketRecord) -> Conn:
    return Conn(record.user, record.rooms, record.alive, record.stamp, record.seq)


def _kind(notice: Notice | None) -> str:
    if isinstance(notice, SocketRecord):
        return "record"
    if isinstance(notice, TypingNotice):
        return "typing"
    if isinstance(notice, GatewayBoot):
        return "boot"
    return "invalid"


def _update_kind(event: Event) -> str:
    if isinstance(event, UserStatus):
        return event.status
    if isinstance(event, RoomChange):
        return event.status
    if isinstance(event, RoomCount):
        return "count"
    return "typing"


def _error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}
