"""One Engine.IO connection's life: its transport, the task reading it, and how it ended.

The client makes a new link for every (re)connect; calls and the reconnect loop wait on
``ended``, which resolves exactly once with the :class:`DisconnectReason`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from client.errors import TransportLost
from client.state import DisconnectReason
from client.transport import Transport
from shared.protocol.packets import Packet

log = logging.getLogger(__name__)

PacketHandler = Callable[[Packet], DisconnectReason | None]


class Link:
    def __init__(self, transport: Transport, on_packet: PacketHandler) -> None:
        self.transport = transport
        self._on_packet = on_packet
        loop = asyncio.get_running_loop()
        self.ended: asyncio.Future[DisconnectReason] = loop.create_future()
        self._reader = loop.create_task(self._read())

    async def _read(self) -> None:
        """Hand every packet over until the transport fails or a packet ends the session."""
        try:
            while True:
                reason = self._on_packet(await self.transport.receive())
                if reason is not None:
                    break
        except TransportLost as lost:
            reason = DisconnectReason("transport", str(lost))
        except Exception as bug:
            log.exception("packet handling failed; dropping the transport")
            reason = DisconnectReason("transport", f"internal error: {bug!r}")
        await self.transport.close()
        self._end(reason)

    def _end(self, reason: DisconnectReason) -> None:
        if not self.ended.done():
            self.ended.set_result(reason)

    @property
    def alive(self) -> bool:
        return not self.ended.done()

    async def close(self, reason: DisconnectReason) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self.transport.close()
        self._end(reason)
