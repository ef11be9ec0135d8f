"""The gateway's broker on NATS: the room log and inbox of :mod:`shared.room_log.nats_log`,
plus the fan-out subscriptions only a gateway has.

A room's fan-out subject is subscribed while the gateway has local members; every message of
it goes to the one sink in wire order (see :mod:`gateway.nats_client`). In a durable
namespace the stream's RePublish puts ``Nats-Sequence`` and ``Nats-Last-Sequence`` on each
message, the server-side per-room prev pointer.
"""

from __future__ import annotations

import asyncio
import contextlib

from nats.errors import Error as NatsError

from gateway.broker import BrokerUnavailable, Delivery, Sink
from gateway.nats_client import FanoutClient, sequence_headers
from shared.room_log.nats_log import NatsRoomLog, unavailable
from shared.room_log.streams import LogSettings
from shared.subjects import Subjects

__all__ = ["LogSettings", "NatsBroker"]


class NatsBroker(NatsRoomLog):
    """Round trips on the join path: a new room's SUB is proven by a request queued behind it
    on the same connection (see :mod:`shared.request_mux`), never by a flush. In a durable
    namespace that request is the probe of the rooms' last sequences, one ``multi_last``
    direct get for every room subscribed or asked about in the same loop pass; the position
    it found is what :meth:`last_seq` answers right after :meth:`subscribe` returns."""

    def __init__(self, nc: FanoutClient, subjects: Subjects, log: LogSettings) -> None:
        super().__init__(nc, subjects, log)
        self._fan = nc
        self._durable = log.durable
        self._sink: Sink | None = None
        self._subs: dict[tuple[str, str], int] = {}
        self._settled: dict[tuple[str, str], int] = {}

    def attach(self, sink: Sink) -> None:
        self._sink = sink

    async def subscribe(self, nsp: str, room: str) -> None:
        key = (nsp, room)
        if key in self._subs:
            return
        sink = self._sink
        assert sink is not None, "attach a sink before subscribing"

        def on_message(data: bytes, headers: bytes | None) -> None:
            seq, prev = sequence_headers(headers)
            sink(Delivery(nsp, room, data, seq, prev))

        try:
            self._subs[key] = await self._fan.subscribe_routed(
                self._subjects.fanout(nsp, room), on_message)
            if nsp in self._durable:
                self._settled[key] = await super().last_seq(nsp, room)
                # For the joiner that called us, which asks at once; nobody later.
                asyncio.get_running_loop().call_soon(self._settled.pop, key, None)
            else:
                await self.requests.barrier()
        except (NatsError, TimeoutError, BrokerUnavailable) as exc:
            await self.unsubscribe(nsp, room)
            raise unavailable(exc) from exc

    async def unsubscribe(self, nsp: str, room: str) -> None:
        self._settled.pop((nsp, room), None)
        sid = self._subs.pop((nsp, room), None)
        if sid is not None:
            with contextlib.suppress(NatsError):  # a lost connection took the sub with it
                await self._fan.unsubscribe_routed(sid)

    async def last_seq(self, nsp: str, room: str) -> int:
        settled = self._settled.pop((nsp, room), None)
        if settled is not None:
            return settled
        return await super().last_seq(nsp, room)

    async def close(self) -> None:
        await super().close()
        for nsp, room in list(self._subs):
            await self.unsubscribe(nsp, room)
