"""Publishes of one connection in flight together, answered in order.

Waiting for each JetStream acknowledgement before reading the client's next frame limits a
publisher to one message per round trip; sending each publish at once and awaiting the
acknowledgements in a separate task keeps the client's order (one NATS connection stores them
in the order sent) and bounds what is in flight, so a flood waits instead of piling up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from gateway.broker import BrokerUnavailable, PublishResult

T = TypeVar("T")
MAX_IN_FLIGHT = 64

Answer = Callable[[T, PublishResult | None], None]


class PublishPipeline(Generic[T]):
    def __init__(self, answer: Answer[T], max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._answer = answer
        self._max = max_in_flight
        self._queue: deque[tuple[Awaitable[PublishResult], T]] = deque()
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._task: asyncio.Task[None] | None = None

    async def add(self, pending: Awaitable[PublishResult], item: T) -> None:
        """Queue one publish's result; waits while ``max_in_flight`` are unanswered."""
        while len(self._queue) >= self._max:
            self._room.clear()
            await self._room.wait()
        self._queue.append((pending, item))
        self._wake.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                pending, item = self._queue[0]
                try:
                    result: PublishResult | None = await pending
                except BrokerUnavailable:
                    result = None
                self._queue.popleft()
                self._room.set()
                self._answer(item, result)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for pending, _ in self._queue:
            if isinstance(pending, asyncio.Future | asyncio.Task):
                pending.cancel()
            elif hasattr(pending, "close"):
                pending.close()
        self._queue.clear()
