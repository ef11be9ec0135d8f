"""A TCP relay to one gateway that can end a connection at an exact point of the server's
stream: right after the server has sent a given number of Socket.IO EVENT packets of a
namespace. It stands for a network that fails in the middle of a recovery's replay, which a
timed cut cannot hit reliably.

The relay reads the server's WebSocket frames (unmasked, never fragmented by the gateway),
forwards them whole, and after the chosen EVENT ends the connection: the client's side with a
FIN, so the client reads everything forwarded before it sees the end of the stream.
"""

from __future__ import annotations

import asyncio
import contextlib

from devcluster.tcpproxy import SwitchProxy, pipe


def _frame_bounds(buffer: bytes) -> tuple[int, int] | None:
    """Where the payload of the WebSocket frame at the start of ``buffer`` begins and where
    the frame ends, once the whole frame is there."""
    if len(buffer) < 2:
        return None
    length, header = buffer[1] & 0x7F, 2
    if length == 126:
        if len(buffer) < 4:
            return None
        length, header = int.from_bytes(buffer[2:4], "big"), 4
    elif length == 127:
        if len(buffer) < 10:
            return None
        length, header = int.from_bytes(buffer[2:10], "big"), 10
    end = header + length
    return (header, end) if len(buffer) >= end else None


class EventCutRelay(SwitchProxy):
    """A :class:`~devcluster.tcpproxy.SwitchProxy` to one gateway whose :meth:`arm` makes the
    next connection end after ``events`` EVENT packets of ``nsp``."""

    def __init__(self, port: int, nsp: str) -> None:
        super().__init__([("127.0.0.1", port)])
        self._event_prefix = b"42" + nsp.encode() + b","
        self._armed: int | None = None
        self.cut_off = asyncio.Event()  # an armed connection reached its EVENT and ended
        self.forwarded: list[bytes] = []  # the payloads the armed connection forwarded

    def arm(self, events: int) -> None:
        self._armed = events

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        limit, self._armed = self._armed, None
        if limit is None:
            await super()._accept(reader, writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._pick())
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        upstream = asyncio.ensure_future(pipe(reader, up_writer))
        try:
            await self._forward_until(up_reader, writer, limit)
        except OSError:
            pass
        finally:
            upstream.cancel()
            for w in (writer, up_writer):
                self._writers.discard(w)
                with contextlib.suppress(Exception):
                    w.close()

    async def _forward_until(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                             limit: int) -> None:
        """Forward the HTTP response, then whole frames, until the ``limit``-th EVENT."""
        buffer, upgraded, seen = b"", False, 0
        while chunk := await reader.read(65536):
            buffer += chunk
            if not upgraded:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    continue
                writer.write(buffer[:end + 4])
                buffer, upgraded = buffer[end + 4:], True
            while (bounds := _frame_bounds(buffer)) is not None:
                start, end = bounds
                frame, buffer = buffer[:end], buffer[end:]
                writer.write(frame)
                payload = frame[start:]
                self.forwarded.append(payload)
                if payload.startswith(self._event_prefix):
                    seen += 1
                    if seen == limit:
                        await writer.drain()
                        self.cut_off.set()
                        return
            await writer.drain()
