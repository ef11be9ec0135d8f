"""Publishes of one connection in flight together, answered in order.

Waiting for each JetStream acknowledgement before reading the client's next frame limits a
publisher to one message per round trip. Each publish is sent at once instead, and its
acknowledgement releases answers from the head of the queue, so acks keep the client's order
(one NATS connection stores publishes in the order sent) with no task, future or timer per
message. ``max_in_flight`` bounds what is unanswered: a flood waits instead of piling up.
Most sockets never publish, so the queue (a deque and its first block, ~760 B) is made by the
first publish, not with the connection.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from gateway.broker import Done, PublishResult

T = TypeVar("T")
MAX_IN_FLIGHT = 64

Answer = Callable[[T, PublishResult | None], None]


class _Slot(Generic[T]):
    __slots__ = ("done", "item", "result")

    def __init__(self, item: T) -> None:
        self.item = item
        self.result: PublishResult | None = None
        self.done = False


class PublishQueue(Generic[T]):
    def __init__(self, answer: Answer[T], max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._answer = answer
        self._max = max_in_flight
        self._queue: deque[_Slot[T]] | None = None
        self._room: asyncio.Event | None = None
        self._closed = False

    @property
    def idle(self) -> bool:
        """No publish is waiting for its result."""
        return not self._queue

    @property
    def full(self) -> bool:
        return self._queue is not None and len(self._queue) >= self._max

    async def wait_room(self) -> None:
        """Returns once another publish may be begun (at once unless the queue is full)."""
        while self.full and not self._closed:
            if self._room is None:
                self._room = asyncio.Event()
            self._room.clear()
            await self._room.wait()

    def begin(self, item: T) -> Done:
        """Queue ``item``; the returned callback takes its result (once, in any order)."""
        slot = _Slot(item)
        if self._queue is None:
            self._queue = deque()
        self._queue.append(slot)

        def done(result: PublishResult | None) -> None:
            if self._closed or slot.done:
                return
            slot.result, slot.done = result, True
            self._release()

        return done

    def cancel_last(self) -> None:
        """Forget the newest item: its publish could not be sent (and is answered apart)."""
        if self._queue:
            self._queue.pop()

    def _release(self) -> None:
        queue = self._queue
        while queue and queue[0].done:
            slot = queue.popleft()
            self._answer(slot.item, slot.result)
        if self._room is not None and not self.full:
            self._room.set()

    def close(self) -> None:
        """Unanswered publishes are dropped: the connection is gone, and a retry on a new
        connection is de-duplicated by its message id."""
        self._closed = True
        self._queue = None
        if self._room is not None:
            self._room.set()
