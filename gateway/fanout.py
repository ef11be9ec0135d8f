"""Local fan-out: room subscriptions follow local membership, and each namespace has one
ordered feed (:mod:`gateway.feed`) that writes through its :class:`gateway.delivery.Writer`.

Joins that race the first subscription wait for it. Members being replayed to (recovery, a
join with ``since``) are put on hold: live messages wait behind the replay, and floors drop
live copies of what the replay already carried. The dependency runs one way: fan-out → feed →
delivery.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from gateway.broker import Broker, Delivery
from gateway.delivery import Member
from gateway.feed import REPAIR_LIMIT, Feed
from gateway.room_spans import RoomSpans, chain_of
from gateway.rooms import RoomKey, RoomRegistry
from shared import envelope
from shared.merge import Chained, log_order
from shared.metrics import GatewayMetrics
from shared.protocol.frames import event_frames, with_position
from shared.protocol.offsets import Offset, encode_offset

log = logging.getLogger(__name__)

Unpacked = tuple[bytes, tuple[bytes, ...]]  # a logged body's args and attachments


class TooLarge(Exception):
    """A replay would not fit the member's send budget."""


@dataclass(frozen=True, slots=True)
class Replayed:
    rooms: int
    messages: int


@dataclass(frozen=True, slots=True)
class Catchup:
    """A replay read and sized against the send budget but not written yet: a recovered
    socket's CONNECT reply goes out first, then this, then what was held live."""

    nsp: str
    frames: tuple[bytes, ...]
    base: Offset
    ranges: dict[str, tuple[int, int]]
    rooms: int


class Fanout:
    """This gateway's room subscriptions, following local membership, and one feed per
    namespace; the replays that catch a member up come from the log through here too."""

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
        self._spans: RoomSpans[Unpacked] = RoomSpans()
        broker.attach(self._sink)

    def feed(self, nsp: str) -> Feed:
        feed = self._feeds.get(nsp)
        if feed is None:
            feed = self._feeds[nsp] = Feed(nsp, nsp in self._durable, self.registry,
                                           self.broker, self.metrics, self._batch,
                                           self.connected)
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

    # --- replay ---------------------------------------------------------------------------

    async def replay(self, member: Member, nsp: str, ranges: dict[str, tuple[int, int]],
                     base: Offset, budget: int) -> Replayed:
        """Read the replay (:meth:`read_replay`) and write it to the member now."""
        return self.write_replay(member, await self.read_replay(member, nsp, ranges, base,
                                                                budget))

    async def read_replay(self, member: Member, nsp: str, ranges: dict[str, tuple[int, int]],
                          base: Offset, budget: int) -> Catchup:
        """Each room's logged messages in ``(after, upto]`` for one member, merged in log
        order, each with its recomputed per-room ``prev`` and an offset naming how far every
        room has been delivered. Raises :class:`TooLarge` when the replay would not fit
        ``budget``; :class:`~gateway.broker.BrokerUnavailable` on log errors. Nothing is
        written and the member is left as it was."""
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
        return Catchup(nsp, tuple(frames), base, ranges, len(per_room))

    def write_replay(self, member: Member, catchup: Catchup) -> Replayed:
        """Queue a read replay on the member, and raise its floors so the live copies of what
        it carried (held, or still to come) are dropped."""
        for frame in catchup.frames:
            member.outbox.push(frame)
        member.base = max(member.base, catchup.base.frontier)
        for room, (_, upto) in catchup.ranges.items():
            member.ahead[room] = max(member.ahead.get(room, 0), upto)
            member.floors[room] = max(member.floors.get(room, 0), upto)
        count = len(catchup.frames)
        self.metrics.replayed.labels(catchup.nsp).inc(count)
        return Replayed(catchup.rooms, count)

    async def _read_ranges(self, nsp: str, ranges: dict[str, tuple[int, int]]
                           ) -> dict[str, tuple[Chained[Unpacked], ...]]:
        """Each room's logged messages in ``(after, upto]`` with their recomputed ``prev``
        (:func:`shared.merge.merge_room`; one that cannot be unpacked is left out of the
        chain); rooms with nothing logged there are left out."""
        per_room: dict[str, tuple[Chained[Unpacked], ...]] = {}
        for room, (after, upto) in ranges.items():
            if upto <= after:
                continue
            chain = await self._read_room(nsp, room, after, upto)
            if chain:
                per_room[room] = chain
        return per_room

    async def _read_room(self, nsp: str, room: str, after: int, upto: int
                         ) -> tuple[Chained[Unpacked], ...]:
        """The room's chain in ``(after, upto]``: from what a recent replay of the room read
        (:mod:`gateway.room_spans`), else from the log."""
        key = (nsp, room)
        span = self._spans.covering(key, after)
        if span is None:
            found = await self._read_log(nsp, room, after, upto)
            if not found:
                return ()
            first_prev = await self.broker.prev_of(nsp, room, found[0][0])
            self._spans.keep(key, after, first_prev, found)
            return chain_of(after, found, first_prev)
        if upto > span.hi:
            more = await self._read_log(nsp, room, span.hi, upto)
            if not self._spans.fits(span, len(more)):
                self._spans.drop(key)
                return await self._read_room(nsp, room, after, upto)
            span.extend(more)
        return span.chain(after, upto)

    async def _read_log(self, nsp: str, room: str, after: int, upto: int
                        ) -> list[tuple[int, Unpacked | None]]:
        found = await self.broker.read(nsp, room, after, upto, REPAIR_LIMIT + 1)
        if len(found) > REPAIR_LIMIT:
            raise TooLarge(room)
        return [(m.seq, envelope.unpack(m.body)) for m in found]

    def claim(self, member: Member, nsp: str) -> Offset:
        """What ``member`` has been delivered so far, as an offset would say it."""
        chains = self.feed(nsp).chains
        member.catch_up(chains.frontier)
        return Offset(max(chains.frontier, member.base), {**chains.positions, **member.ahead})
