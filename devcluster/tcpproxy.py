"""A small TCP proxy that plays the load balancer in front of gateways, for the chaos tests and
the recovery benchmark: ``switch`` sends new connections elsewhere (a backend marked dead),
``cut`` drops the open ones (a network failure)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence


class SwitchProxy:
    """A TCP proxy: new connections go round-robin to the current upstreams; ``switch`` points
    new ones elsewhere (what a load balancer does once a backend is marked dead). Open pairs
    are left alone: when an upstream dies, its pairs see EOF/reset and are closed both ways."""

    def __init__(self, upstreams: Sequence[tuple[str, int]]) -> None:
        self.upstreams = list(upstreams)
        self._next = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.accepted = 0
        self.refused = 0  # upstream connect failed (the client sees its connection reset)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> SwitchProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, backlog=4096)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def switch(self, upstreams: Sequence[tuple[str, int]]) -> None:
        self.upstreams = list(upstreams)

    def cut(self) -> None:
        """Drop every open pair (a network failure: both ends see a reset)."""
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()

    def _pick(self) -> tuple[str, int]:
        self._next += 1
        return self.upstreams[self._next % len(self.upstreams)]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._pick())
        except OSError:
            self.refused += 1
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await splice(reader, writer, up_reader, up_writer)
        except asyncio.CancelledError:
            pass  # only stop() cancels, and nobody awaits the result of a connection handler
        finally:
            self._tasks.discard(task)
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def splice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:
    """Copy bytes both ways until either side ends; an end on one side aborts the other, as a
    balancer's closed backend resets its client."""
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction until its reader ends, then abort the writer."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()
