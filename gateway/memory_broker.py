"""An in-process broker: the reference the NATS broker is held to by the contract suite,
and the bus unit tests of the gateway core run on."""

from __future__ import annotations

import asyncio
import logging

from gateway.broker import Deliver, Delivery, PublishResult

log = logging.getLogger(__name__)


class MemoryBus:
    """What NATS is to several gateways: it routes a room's messages to every subscriber."""

    def __init__(self) -> None:
        self.subscribers: dict[tuple[str, str], dict[MemoryBroker, Deliver]] = {}
        self.published = 0
        self.locks: dict[tuple[str, str], asyncio.Lock] = {}


class MemoryBroker:
    def __init__(self, bus: MemoryBus) -> None:
        self._bus = bus

    async def subscribe(self, nsp: str, room: str, deliver: Deliver) -> None:
        self._bus.subscribers.setdefault((nsp, room), {}).setdefault(self, deliver)

    async def unsubscribe(self, nsp: str, room: str) -> None:
        subscribers = self._bus.subscribers.get((nsp, room), {})
        subscribers.pop(self, None)
        if not subscribers:
            self._bus.subscribers.pop((nsp, room), None)

    async def publish(
        self, nsp: str, room: str, body: bytes, msg_id: str | None = None
    ) -> PublishResult:
        self._bus.published += 1
        async with self._bus.locks.setdefault((nsp, room), asyncio.Lock()):
            for deliver in list(self._bus.subscribers.get((nsp, room), {}).values()):
                try:
                    await deliver(Delivery(body))
                except Exception:  # a subscriber's failure is its own, as on NATS
                    log.exception("a subscriber failed on a delivery")
        return PublishResult()

    async def close(self) -> None:
        for subscribers in self._bus.subscribers.values():
            subscribers.pop(self, None)
