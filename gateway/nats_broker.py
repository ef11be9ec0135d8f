"""The broker on core NATS: one subscription per room with local members.

``subscribe`` flushes so the server has registered the interest before the gateway acks a
join: a message published anywhere after that ack reaches this gateway.
"""

from __future__ import annotations

import contextlib

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from gateway.broker import BrokerUnavailable, Deliver, Delivery, PublishResult
from shared.subjects import Subjects

FLUSH_TIMEOUT_S = 2


class NatsBroker:
    def __init__(self, nc: Client, subjects: Subjects) -> None:
        self._nc = nc
        self._subjects = subjects
        self._subs: dict[tuple[str, str], Subscription] = {}

    async def subscribe(self, nsp: str, room: str, deliver: Deliver) -> None:
        key = (nsp, room)
        if key in self._subs:
            return

        async def on_message(msg: Msg) -> None:
            await deliver(Delivery(msg.data))

        try:
            self._subs[key] = await self._nc.subscribe(self._subjects.fanout(nsp, room),
                                                       cb=on_message)
            await self._nc.flush(timeout=FLUSH_TIMEOUT_S)
        except (NatsError, TimeoutError) as exc:
            await self.unsubscribe(nsp, room)
            raise BrokerUnavailable(str(exc) or type(exc).__name__) from exc

    async def unsubscribe(self, nsp: str, room: str) -> None:
        sub = self._subs.pop((nsp, room), None)
        if sub is not None:
            with contextlib.suppress(NatsError):  # a lost connection took the sub with it
                await sub.unsubscribe()

    async def publish(
        self, nsp: str, room: str, body: bytes, msg_id: str | None = None
    ) -> PublishResult:
        if not self._nc.is_connected:
            raise BrokerUnavailable("not connected to NATS")
        try:
            await self._nc.publish(self._subjects.fanout(nsp, room), body)
        except NatsError as exc:
            raise BrokerUnavailable(str(exc) or type(exc).__name__) from exc
        return PublishResult()

    async def close(self) -> None:
        for nsp, room in list(self._subs):
            await self.unsubscribe(nsp, room)
