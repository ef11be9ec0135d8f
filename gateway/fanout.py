"""Local fan-out: room subscriptions follow local membership; each namespace has one ordered
feed; every message is framed once and handed to each member's outbox without awaiting any
socket.

The broker hands messages over in the bus's order, and one task per namespace delivers them
in that order, so every socket sees its namespace's logged messages in log order. Before a
logged message goes out its room's prev chain is checked: a gap is fetched from the log and
delivered first; after a NATS disconnect every subscribed room's tail is checked the same way.
Joins that race the first subscription wait for it. Members being replayed to (recovery, a join
with ``since``) are put on hold: live messages wait behind the replay, and floors drop live
copies of what the replay already carried.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass, field

from gateway.broker import Broker, Delivery
from gateway.chain import RoomChains
from gateway.outbox import Outbox
from gateway.rooms import RoomKey, RoomRegistry
from shared import envelope
from shared.backoff import Backoff
from shared.chain import DUPLICATE, Gap
from shared.merge import Chained, Logged, log_order, merge_room
from shared.metrics import GatewayMetrics
from shared.protocol.frames import event_frames, with_position
from shared.protocol.offsets import Offset, encode_offset

log = logging.getLogger(__name__)

REPAIR_LIMIT = 10_000
SAMPLE = 8
"""One message in this many is timed and its delivery lag observed: the histograms keep their
shape, and the fan-out of the others costs two clock reads and a bucket search less."""
ALWAYS_TIMED = 64
"""A message for more local members than this is always timed: the clock costs nothing beside
its fan-out, and the slow messages are the ones the fan-out-time alert is about."""
Unpacked = tuple[bytes, tuple[bytes, ...]]  # a logged body's args and attachments
REPAIR_BACKOFF = Backoff(base=0.05, cap=2.0)
REPAIR_ATTEMPTS = 8  # reads of a gap's range (about 7 s of pauses) before delivering on past it


class Frames:
    """One message's frames: with the live offset (what most members get, built at once),
    and, built only when a member needs them, without any offset (sockets that do not
    recover) or with a member's own offset (members ahead of the frontier)."""

    __slots__ = (
        "_args",
        "_attachments",
        "_nsp",
        "_plain",
        "_positions",
        "_prev",
        "_seq",
        "frontier",
        "with_offset",
    )

    def __init__(self, nsp: str, args: bytes, attachments: tuple[bytes, ...], seq: int | None,
                 prev: int, offset: str | None, frontier: int,
                 positions: dict[str, int] | None) -> None:
        self._nsp, self._args, self._attachments = nsp, args, attachments
        self._seq, self._prev = seq, prev
        self.frontier, self._positions = frontier, positions
        self._plain: bytes | None = None
        if seq is None:
            self.with_offset = self._plain = event_frames(nsp, args, attachments)
        else:
            self.with_offset = event_frames(nsp, with_position(args, seq, prev, offset),
                                            attachments)

    @property
    def positioned(self) -> bool:
        return self._seq is not None

    def plain(self) -> bytes:
        if self._plain is None:
            assert self._seq is not None
            self._plain = event_frames(
                self._nsp, with_position(self._args, self._seq, self._prev, None),
                self._attachments)
        return self._plain

    def own(self, base: int, ahead: dict[str, int]) -> bytes:
        assert self._seq is not None and self._positions is not None
        offset = encode_offset(max(self.frontier, base), {**self._positions, **ahead})
        return event_frames(self._nsp, with_position(self._args, self._seq, self._prev, offset),
                            self._attachments)


@dataclass(eq=False, slots=True)
class Member:
    """One namespace socket as the fan-out sees it.

    After a replay a member can be ahead of this gateway's frontier (it recovered here from a
    gateway that had delivered more, or it replayed a room up to the room's end). Until the
    live frontier passes it, the member's offsets are written for it alone (``base``, the
    frontier it brought, and ``ahead``, rooms replayed further) so its offset never moves back.
    """

    outbox: Outbox
    offsets: bool = True
    hold: list[tuple[str, int | None, int, Frames]] | None = None
    floors: dict[str, int] = field(default_factory=dict)
    base: int = 0
    ahead: dict[str, int] = field(default_factory=dict)

    def take(self, room: str, seq: int | None, frontier: int, frames: Frames) -> None:
        if self.hold is not None:
            self.hold.append((room, seq, frontier, frames))
            return
        if seq is not None and self.floors:
            floor = self.floors.get(room)
            if floor is not None:
                if seq <= floor:
                    return
                del self.floors[room]
        if not self.offsets:
            self.outbox.push(frames.plain())
            return
        if frames.positioned and (self.base or self.ahead):
            self.catch_up(frontier)
            if self.base or self.ahead:
                self.outbox.push(frames.own(self.base, self.ahead))
                return
        self.outbox.push(frames.with_offset)

    def catch_up(self, frontier: int) -> None:
        if self.base <= frontier:
            self.base = 0
        if self.ahead:
            self.ahead = {room: seq for room, seq in self.ahead.items() if seq > frontier}

    def release(self) -> None:
        """End a hold: what waited goes out, minus what a replay already carried."""
        held, self.hold = self.hold or [], None
        for item in held:
            self.take(*item)


class TooLarge(Exception):
    """A replay would not fit the member's send budget."""


@dataclass(frozen=True, slots=True)
class Replayed:
    rooms: int
    messages: int


class Feed:
    """One namespace's messages, delivered in the order the broker handed them over."""

    def __init__(self, fanout: Fanout, nsp: str, durable: bool) -> None:
        self.nsp = nsp
        self.durable = durable
        self.chains = RoomChains()
        self._fanout = fanout
        self._lag = fanout.metrics.delivery_lag.labels(nsp)
        self.fanout_in = fanout.metrics.fanout_in.labels(nsp)
        self.packets_out = fanout.metrics.packets_out.labels(nsp)
        self.written = 0
        self._queue: deque[Delivery | None] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def push(self, delivery: Delivery | None) -> None:
        """``None`` marks a NATS disconnect: tails are checked before what follows."""
        self._queue.append(delivery)
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        queue = self._queue
        while True:
            await self._wake.wait()
            self._wake.clear()
            while queue:
                delivery = queue.popleft()
                try:
                    if delivery is None:
                        await self._resync()
                    else:
                        await self._handle(delivery)
                except Exception:
                    log.exception("fan-out of a %s message failed", self.nsp)

    async def _handle(self, delivery: Delivery) -> None:
        if (delivery.nsp, delivery.room) not in self._fanout.registry:
            return  # queued before the room's last member left; its chain is gone
        if not self.written % SAMPLE:
            stamp = envelope.stamp_ms(delivery.body)
            if stamp is not None:
                self._lag.observe(max(0.0, time.time() - stamp / 1000))
        seq, prev = delivery.seq, delivery.prev
        if not self.durable or seq is None:
            await self._fanout.write(delivery.nsp, delivery.room, delivery.body, None, 0, None)
            return
        chains = self.chains
        verdict = chains.observe(delivery.room, seq, prev or 0)
        if verdict is DUPLICATE:
            return
        hole = None
        if isinstance(verdict, Gap) and not await self._repair(
            delivery.room, verdict.after, verdict.before - 1
        ):
            hole = verdict.after
        chains.delivered_live(delivery.room, seq)
        if hole is not None:
            chains.positions[delivery.room] = hole  # offsets keep the hole for recovery
            log.error("a gap in a %s room could not be repaired; delivering on", self.nsp)
        await self._fanout.write(self.nsp, delivery.room, delivery.body, seq, prev or 0,
                                 chains.offset())

    async def _repair(self, room: str, after: int, upto: int) -> bool:
        """Fetch and deliver a room's missing range; the feed waits (keeping order) while the
        log is retried. ``False`` if it stayed unreadable."""
        fanout = self._fanout
        fanout.metrics.gap_repairs.labels(self.nsp).inc()
        stored = None
        for delay in REPAIR_BACKOFF.delays(attempts=REPAIR_ATTEMPTS):
            try:
                stored = await fanout.broker.read(self.nsp, room, after, upto, REPAIR_LIMIT)
                break
            except Exception:
                log.warning("gap in %s not readable yet; retrying in %.1fs", self.nsp, delay)
                await asyncio.sleep(delay)
        if stored is None:
            return False
        for entry in merge_room(after, (Logged(m.seq, None, m.body) for m in stored)).chain:
            if (self.nsp, room) not in fanout.registry:
                return True
            self.chains.delivered_repair(room, entry.seq)
            await fanout.write(self.nsp, room, entry.item, entry.seq, entry.prev,
                               self.chains.offset())
        fanout.metrics.repaired.labels(self.nsp).inc(len(stored))
        return True

    async def _resync(self) -> None:
        """After a disconnect: messages lost at a room's tail leave no hole in any chain, so
        each subscribed room's last logged sequence is compared with what was delivered."""
        await self._fanout.connected()
        for room, last in list(self.chains.last.items()):
            try:
                stored_last = await self._fanout.broker.last_seq(self.nsp, room)
            except Exception:
                log.warning("tail check of a %s room failed", self.nsp)
                continue
            if stored_last > last:
                await self._repair(room, last, stored_last)
                self.chains.repair_done(room)


class Fanout:
    def __init__(self, broker: Broker, metrics: GatewayMetrics, batch: int,
                 durable: frozenset[str]) -> None:
        self.registry: RoomRegistry[Member] = RoomRegistry()
        self.broker = broker
        self.metrics = metrics
        self._batch = batch
        self._durable = durable
        self._ready: dict[RoomKey, asyncio.Future[None]] = {}
        self._feeds: dict[str, Feed] = {}
        self._connected = asyncio.Event()
        self._connected.set()
        broker.attach(self._sink)

    def feed(self, nsp: str) -> Feed:
        feed = self._feeds.get(nsp)
        if feed is None:
            feed = self._feeds[nsp] = Feed(self, nsp, nsp in self._durable)
        return feed

    def _sink(self, delivery: Delivery) -> None:
        self.feed(delivery.nsp).push(delivery)

    # --- NATS connection state ------------------------------------------------------------

    def disconnected(self) -> None:
        self._connected.clear()
        for feed in self._feeds.values():
            if feed.durable:
                feed.push(None)

    def reconnected(self) -> None:
        self._connected.set()

    async def connected(self) -> None:
        await self._connected.wait()

    # --- membership -------------------------------------------------------------------------

    async def join(self, key: RoomKey, member: Member) -> int:
        """Add a member; returns once the room's messages reach this gateway, with the room's
        last logged sequence (0 for an ephemeral namespace). Raises
        :class:`~gateway.broker.BrokerUnavailable` and leaves the member out."""
        first = self.registry.add(key, member)
        if first:
            ready = self._ready[key] = asyncio.get_running_loop().create_future()
            self.metrics.rooms.set(len(self.registry))
            try:
                await self.broker.subscribe(*key)
            except Exception as exc:
                ready.set_exception(exc)
                ready.exception()  # retrieved here; joiners re-raise it below
                self._ready.pop(key, None)
                self.registry.remove(key, member)
                self.metrics.rooms.set(len(self.registry))
                raise
            ready.set_result(None)
        else:
            pending = self._ready.get(key)
            if pending is not None and not pending.done():
                try:
                    await asyncio.shield(pending)
                except Exception:
                    self.registry.remove(key, member)
                    raise
        if key[0] not in self._durable:
            return 0
        return await self._position(key, member, first)

    async def _position(self, key: RoomKey, member: Member, first: bool) -> int:
        """Where a joined member's room starts. A room subscribed here already: after the
        last message this gateway delivered, where its offsets will start, no probe of the
        log. The first member: the log's last sequence, which starts the room's chain."""
        chains = self.feed(key[0]).chains
        position = None if first else chains.last.get(key[1])
        if position is not None:
            return position
        try:
            position = await self.broker.last_seq(*key)
        except Exception:
            await self.leave(key, member)
            raise
        chains.start(key[1], position)
        return position

    async def leave(self, key: RoomKey, member: Member) -> None:
        member.floors.pop(key[1], None)
        if self.registry.remove(key, member):
            self.metrics.rooms.set(len(self.registry))
            ready = self._ready.pop(key, None)
            if ready is not None and not ready.done():
                await asyncio.wait([ready])
            if key not in self.registry:
                self.feed(key[0]).chains.forget(key[1])
                await self.broker.unsubscribe(*key)

    # --- delivery ---------------------------------------------------------------------------

    async def write(self, nsp: str, room: str, body: bytes, seq: int | None, prev: int,
                    offset: str | None) -> None:
        """Frame one message once and hand it to every local member of the room, yielding
        between batches. The fan-out time is sampled (see ``SAMPLE``, ``ALWAYS_TIMED``)."""
        feed = self.feed(nsp)
        feed.written += 1
        members = self.registry.live((nsp, room))
        count = len(members)
        sampled = count > ALWAYS_TIMED or not feed.written % SAMPLE
        started = time.perf_counter() if sampled else 0.0
        unpacked = envelope.unpack(body)
        if unpacked is None:
            log.warning("dropped a malformed fan-out message for namespace %s", nsp)
            return
        args, attachments = unpacked
        if seq is None:
            frames = Frames(nsp, args, attachments, None, 0, None, 0, None)
        else:
            chains = feed.chains
            # The positions are copied: a member's own offset is written from this moment.
            frames = Frames(nsp, args, attachments, seq, prev, offset, chains.frontier,
                            dict(chains.positions))
        frontier = frames.frontier
        with_offset = frames.with_offset
        batch = self._batch
        snapshot = members if count <= batch else list(members)
        for start in range(0, count, batch):
            if start:
                await asyncio.sleep(0)
            for member in (snapshot if count <= batch
                           else itertools.islice(snapshot, start, start + batch)):
                if member.hold is None and not member.floors and member.offsets \
                        and not member.base and not member.ahead:
                    member.outbox.push(with_offset)
                else:
                    member.take(room, seq, frontier, frames)
        feed.fanout_in.inc()
        feed.packets_out.inc(count)
        if sampled:
            self.metrics.fanout_seconds.observe(time.perf_counter() - started)

    async def replay(self, member: Member, nsp: str, ranges: dict[str, tuple[int, int]],
                     base: Offset, budget: int) -> Replayed:
        """Write each room's logged messages in ``(after, upto]`` to one member, merged in log
        order, each with its recomputed per-room ``prev`` and an offset naming how far every
        room has been delivered. Raises :class:`TooLarge` (writing nothing) when the replay
        would not fit ``budget``; :class:`~gateway.broker.BrokerUnavailable` on log errors."""
        per_room = await self._read_ranges(nsp, ranges)
        positions = dict(base.lagging)
        frames: list[bytes] = []
        size = 0
        for room, entry in log_order(per_room):
            args, attachments = entry.item
            positions[room] = entry.seq
            offset = encode_offset(base.frontier, positions) if member.offsets else None
            frame = event_frames(nsp, with_position(args, entry.seq, entry.prev, offset),
                                 attachments)
            size += len(frame)
            if size > budget:
                raise TooLarge(room)
            frames.append(frame)
        for frame in frames:
            member.outbox.push(frame)
        member.base = max(member.base, base.frontier)
        for room, (_, upto) in ranges.items():
            member.ahead[room] = max(member.ahead.get(room, 0), upto)
            member.floors[room] = max(member.floors.get(room, 0), upto)
        count = len(frames)
        self.metrics.replayed.labels(nsp).inc(count)
        return Replayed(len(per_room), count)

    async def _read_ranges(self, nsp: str, ranges: dict[str, tuple[int, int]]
                           ) -> dict[str, tuple[Chained[Unpacked], ...]]:
        """Each room's logged messages in ``(after, upto]`` with their recomputed ``prev``
        (:func:`shared.merge.merge_room`; one that cannot be unpacked is left out of the
        chain); rooms with nothing logged there are left out."""
        per_room: dict[str, tuple[Chained[Unpacked], ...]] = {}
        for room, (after, upto) in ranges.items():
            if upto <= after:
                continue
            found = await self.broker.read(nsp, room, after, upto, REPAIR_LIMIT + 1)
            if len(found) > REPAIR_LIMIT:
                raise TooLarge(room)
            if found:
                first_prev = await self.broker.prev_of(nsp, room, found[0].seq)
                logged = (Logged(m.seq, None, unpacked) for m in found
                          if (unpacked := envelope.unpack(m.body)) is not None)
                per_room[room] = merge_room(after, logged, first_prev).chain
        return per_room

    def claim(self, member: Member, nsp: str) -> Offset:
        """What ``member`` has been delivered so far, as an offset would say it."""
        chains = self.feed(nsp).chains
        member.catch_up(chains.frontier)
        return Offset(max(chains.frontier, member.base), {**chains.positions, **member.ahead})
