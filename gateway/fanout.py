"""Local fan-out: room subscriptions follow local membership, and every message is framed
once and handed to each member's outbox without awaiting any socket.

A room is subscribed when it gains its first local member and unsubscribed when it loses its
last. Joins that race the first subscription wait for it, so no join is acked before the
gateway really receives the room. Big rooms are written in batches that yield to the event
loop in between; the broker awaits each delivery before the next of the same room, so the
yield never reorders a room.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable
from typing import Protocol

from gateway.broker import Broker, Delivery
from gateway.outbox import Outbox
from gateway.rooms import RoomKey, RoomRegistry
from shared import envelope
from shared.metrics import GatewayMetrics
from shared.protocol.frames import event_frames

log = logging.getLogger(__name__)


class Member(Hashable, Protocol):
    @property
    def outbox(self) -> Outbox: ...


class Fanout:
    def __init__(self, broker: Broker, metrics: GatewayMetrics, batch: int) -> None:
        self.registry: RoomRegistry[Member] = RoomRegistry()
        self._broker = broker
        self._metrics = metrics
        self._batch = batch
        self._ready: dict[RoomKey, asyncio.Future[None]] = {}

    async def join(self, key: RoomKey, member: Member) -> None:
        """Add a member; returns once the room's messages reach this gateway.
        Raises :class:`~gateway.broker.BrokerUnavailable` (and leaves the member out)."""
        if self.registry.add(key, member):
            ready = self._ready[key] = asyncio.get_running_loop().create_future()
            self._metrics.rooms.set(len(self.registry))
            try:
                await self._broker.subscribe(key[0], key[1], self._deliverer(key))
            except Exception as exc:
                ready.set_exception(exc)
                ready.exception()  # retrieved here; joiners re-raise it below
                self._ready.pop(key, None)
                self.registry.remove(key, member)
                self._metrics.rooms.set(len(self.registry))
                raise
            ready.set_result(None)
            return
        pending = self._ready.get(key)
        if pending is not None and not pending.done():
            try:
                await asyncio.shield(pending)
            except Exception:
                self.registry.remove(key, member)
                raise

    async def leave(self, key: RoomKey, member: Member) -> None:
        if self.registry.remove(key, member):
            self._metrics.rooms.set(len(self.registry))
            ready = self._ready.pop(key, None)
            if ready is not None and not ready.done():
                await asyncio.wait([ready])
            if key not in self.registry:
                await self._broker.unsubscribe(key[0], key[1])

    def _deliverer(self, key: RoomKey) -> _Deliver:
        return _Deliver(self, key)

    async def deliver(self, key: RoomKey, delivery: Delivery) -> None:
        started = time.perf_counter()
        unpacked = envelope.unpack(delivery.body)
        if unpacked is None:
            log.warning("dropped a malformed fan-out message for namespace %s", key[0])
            return
        args, attachments = unpacked
        frame = event_frames(key[0], args, attachments)
        members = self.registry.members(key)
        batch = self._batch
        for start in range(0, len(members), batch):
            if start:
                await asyncio.sleep(0)
            for member in members[start : start + batch]:
                member.outbox.push(frame)
        self._metrics.fanout_in.labels(key[0]).inc()
        self._metrics.packets_out.labels(key[0]).inc(len(members))
        self._metrics.fanout_seconds.observe(time.perf_counter() - started)


class _Deliver:
    """The broker's callback for one room (a small object, not a closure per room)."""

    __slots__ = ("_fanout", "_key")

    def __init__(self, fanout: Fanout, key: RoomKey) -> None:
        self._fanout = fanout
        self._key = key

    async def __call__(self, delivery: Delivery) -> None:
        await self._fanout.deliver(self._key, delivery)
