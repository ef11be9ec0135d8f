"""A TCP relay that delays every chunk and can drop connections: the latency and resets that
``tc netem`` would add, done in user space since this kernel has no netem.

Each direction of a pair is a reader stamping chunks with a due time
(``now + delay + jitter * random()``, never earlier than the chunk before it, so bytes keep
their order) and a writer releasing them when due. :meth:`cut` resets every open pair (both
ends see the connection die); ``refuse`` is the share of new connections reset at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random as _random
from collections.abc import Callable

from devcluster.tcpproxy import SwitchProxy

Chunk = tuple[float, bytes]


class DelayRelay(SwitchProxy):
    """A :class:`~devcluster.tcpproxy.SwitchProxy` to one upstream whose pairs are delayed
    (its ``cut`` and ``stop`` as they are), listening on ``listen_host``."""

    def __init__(self, listen_host: str, upstream: tuple[str, int], *, delay: float = 0.0,
                 jitter: float = 0.0, refuse: float = 0.0,
                 random: Callable[[], float] = _random.random) -> None:
        super().__init__([upstream])
        self.listen_host, self.delay, self.jitter, self.refuse = listen_host, delay, jitter, refuse
        self._random = random

    @property
    def url(self) -> str:
        return f"http://{self.listen_host}:{self.port}"

    async def start(self) -> DelayRelay:
        self._server = await asyncio.start_server(self._accept, self.listen_host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._random() < self.refuse:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstreams[0])
        except OSError:
            writer.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except asyncio.CancelledError:
            pass  # only stop() cancels a pair
        finally:
            self._tasks.discard(task)
            self._writers.difference_update((writer, up_writer))
            writer.transport.abort()
            up_writer.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[Chunk | None] = asyncio.Queue()
        release = asyncio.create_task(self._release(queue, writer))
        loop, last_due = asyncio.get_running_loop(), 0.0
        try:
            while data := await reader.read(65536):
                last_due = max(last_due, loop.time() + self.delay + self.jitter * self._random())
                queue.put_nowait((last_due, data))
        except (ConnectionError, OSError):
            pass
        finally:
            queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await release
            writer.transport.abort()

    @staticmethod
    async def _release(queue: asyncio.Queue[Chunk | None], writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while (item := await queue.get()) is not None:
            due, data = item
            await asyncio.sleep(max(0.0, due - loop.time()))
            writer.write(data)
            await writer.drain()
