"""The WebSocket under one Engine.IO session: a short pump around :class:`EngineCore`.

It connects with websockets' own compression and keepalive off (Engine.IO has its own
heartbeat and the gateway sends uncompressed frames), answers server pings, enforces the
liveness deadline the core keeps, and writes a binary packet's header and attachment frames
back to back, as Socket.IO requires.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from client.engine import Broken, EngineCore, Opened, OpenParams, Pinged, Received
from client.errors import TransportLost
from shared.protocol.engineio import MESSAGE_PREFIX, PONG_FRAME
from shared.protocol.packets import Packet, encode_packet

CLOSE_TIMEOUT_S = 1.0


class Transport:
    def __init__(self, ws: ClientConnection, core: EngineCore,
                 answer_pings: Callable[[], bool]) -> None:
        self._ws = ws
        self._core = core
        self._answer_pings = answer_pings
        self._send_lock = asyncio.Lock()
        self._loop = asyncio.get_running_loop()

    @property
    def params(self) -> OpenParams:
        assert self._core.params is not None
        return self._core.params

    @classmethod
    async def open(cls, url: str, *, open_timeout: float, max_size: int | None,
                   answer_pings: Callable[[], bool]) -> Transport:
        """Connect and read the open packet; raises ``OSError``, ``TimeoutError``,
        websockets' handshake errors or :class:`TransportLost`."""
        ws = await connect(url, compression=None, ping_interval=None, max_size=max_size,
                           open_timeout=open_timeout, close_timeout=CLOSE_TIMEOUT_S)
        transport = cls(ws, EngineCore(), answer_pings)
        try:
            async with asyncio.timeout(open_timeout):
                frame = await ws.recv()
        except (TimeoutError, ConnectionClosed) as exc:
            await transport.close()
            raise TransportLost(f"no open packet: {exc!r}") from exc
        if not isinstance(transport._core.receive(frame, transport._loop.time()), Opened):
            await transport.close()
            raise TransportLost("the server did not open an Engine.IO session")
        return transport

    async def receive(self) -> Packet:
        """The next Socket.IO packet; pings are answered on the way.

        Raises :class:`TransportLost` when the socket closes, the server breaks the protocol
        or no ping came within ``pingInterval + pingTimeout``.
        """
        while True:
            deadline = self._core.deadline
            assert deadline is not None
            try:
                async with asyncio.timeout_at(deadline):
                    frame = await self._ws.recv()
            except TimeoutError:
                self.abort()
                raise TransportLost("ping timeout") from None
            except ConnectionClosed as closed:
                raise TransportLost(_describe(closed)) from None
            event = self._core.receive(frame, self._loop.time())
            if isinstance(event, Received):
                return event.packet
            if isinstance(event, Pinged):
                if self._answer_pings():
                    await self._write([PONG_FRAME])
            elif isinstance(event, Broken):
                await self.close(1002, event.reason)
                raise TransportLost(event.reason)

    async def send(self, packet: Packet) -> None:
        text, attachments = encode_packet(packet)
        await self._write([MESSAGE_PREFIX + text, *attachments])

    async def _write(self, frames: list[str | bytes]) -> None:
        try:
            async with self._send_lock:  # attachments must follow their header contiguously
                for frame in frames:
                    await self._ws.send(frame)
        except ConnectionClosed as closed:
            raise TransportLost(_describe(closed)) from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        with contextlib.suppress(ConnectionClosed, OSError):
            await self._ws.close(code, reason)

    def abort(self) -> None:
        """Drop a transport that is presumed dead without waiting for a closing handshake."""
        self._ws.transport.abort()


def _describe(closed: ConnectionClosed) -> str:
    frame = closed.rcvd
    if frame is None:
        return "connection lost"
    return f"closed by the server: {frame.code} {frame.reason}".rstrip()
