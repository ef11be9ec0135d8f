"""One namespace's feed: the broker's messages, delivered in the order it handed them over.

One task per namespace delivers them in that order, so every socket sees its namespace's
logged messages in log order. Before a logged message goes out its room's prev chain is
checked: a gap is fetched from the log (retried with the shared backoff) and delivered first;
after a NATS disconnect every subscribed room's tail is checked the same way. Writing to the
members is :class:`gateway.delivery.Writer`'s; which rooms are subscribed, the fan-out's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from gateway.broker import Broker, Delivery
from gateway.chain import RoomChains
from gateway.delivery import SAMPLE, Member, Writer
from gateway.rooms import RoomRegistry
from shared import envelope
from shared.backoff import Backoff
from shared.chain import DUPLICATE, Gap
from shared.merge import Logged, merge_room
from shared.metrics import GatewayMetrics

log = logging.getLogger(__name__)

REPAIR_LIMIT = 10_000
REPAIR_BACKOFF = Backoff(base=0.05, cap=2.0)
REPAIR_ATTEMPTS = 8  # reads of a gap's range (about 7 s of pauses) before delivering on past it


class Feed:
    """One namespace's messages, delivered in the order the broker handed them over."""

    def __init__(self, nsp: str, durable: bool, registry: RoomRegistry[Member], broker: Broker,
                 metrics: GatewayMetrics, batch: int,
                 connected: Callable[[], Awaitable[None]]) -> None:
        self.nsp = nsp
        self.durable = durable
        self.chains = RoomChains()
        self.writer = Writer(nsp, registry, metrics, batch, self.chains)
        self._registry = registry
        self._broker = broker
        self._metrics = metrics
        self._connected = connected
        self._lag = metrics.delivery_lag.labels(nsp)
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
        if (delivery.nsp, delivery.room) not in self._registry:
            return  # queued before the room's last member left; its chain is gone
        if not self.writer.written % SAMPLE:
            stamp = envelope.stamp_ms(delivery.body)
            if stamp is not None:
                self._lag.observe(max(0.0, time.time() - stamp / 1000))
        seq, prev = delivery.seq, delivery.prev
        if not self.durable or seq is None:
            await self.writer.write(delivery.room, delivery.body, None, 0, None)
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
        await self.writer.write(delivery.room, delivery.body, seq, prev or 0, chains.offset())

    async def _repair(self, room: str, after: int, upto: int) -> bool:
        """Fetch and deliver a room's missing range; the feed waits (keeping order) while the
        log is retried. ``False`` if it stayed unreadable."""
        self._metrics.gap_repairs.labels(self.nsp).inc()
        stored = None
        for delay in REPAIR_BACKOFF.delays(attempts=REPAIR_ATTEMPTS):
            try:
                stored = await self._broker.read(self.nsp, room, after, upto, REPAIR_LIMIT)
                break
            except Exception:
                log.warning("gap in %s not readable yet; retrying in %.1fs", self.nsp, delay)
                await asyncio.sleep(delay)
        if stored is None:
            return False
        for entry in merge_room(after, (Logged(m.seq, None, m.body) for m in stored)).chain:
            if (self.nsp, room) not in self._registry:
                return True
            self.chains.delivered_repair(room, entry.seq)
            await self.writer.write(room, entry.item, entry.seq, entry.prev, self.chains.offset())
        self._metrics.repaired.labels(self.nsp).inc(len(stored))
        return True

    async def _resync(self) -> None:
        """After a disconnect: messages lost at a room's tail leave no hole in any chain, so
        each subscribed room's last logged sequence is compared with what was delivered."""
        await self._connected()
        for room, last in list(self.chains.last.items()):
            try:
                stored_last = await self._broker.last_seq(self.nsp, room)
            except Exception:
                log.warning("tail check of a %s room failed", self.nsp)
                continue
            if stored_last > last:
                await self._repair(room, last, stored_last)
                self.chains.repair_done(room)
