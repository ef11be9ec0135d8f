"""A namespace's ``message:received`` stream turned into exactly-once, in-order deliveries.

The tracker decides; this shell carries the decisions out: hands messages to the app's
callbacks through the dispatcher, saves each room's position once the callbacks returned,
and fills gaps from ``room:history`` page by page while later messages of the room wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from client.counters import Counters
from client.dispatch import Callback, Dispatcher
from client.errors import AckTimeout, ClientClosed, RequestFailed
from client.merge import Message, position_of
from client.positions import PositionStore
from client.sequence import Deliver, Drop, Fetch, FillOutcome, Gap, Hold, SequenceTracker

log = logging.getLogger(__name__)

# (room, since, limit) -> the room:history ack {ok, messages, complete}
HistoryFetcher = Callable[[str, int, int], Awaitable[Mapping[str, Any]]]


class Feed:
    def __init__(self, nsp: str, tracker: SequenceTracker, store: PositionStore,
                 counters: Counters, dispatcher: Dispatcher, fetch_history: HistoryFetcher,
                 history_limit: int, on_message: list[Callback], on_gap: list[Callback]) -> None:
        self.nsp = nsp
        self.tracker = tracker
        self._store = store
        self._counters = counters
        self._dispatcher = dispatcher
        self._fetch_history = fetch_history
        self._history_limit = history_limit
        self._on_message = on_message
        self._on_gap = on_gap
        self._fills: set[asyncio.Task[None]] = set()

    def receive(self, message: Message) -> None:
        verdict = self.tracker.receive(message)
        if isinstance(verdict, Deliver):
            for item in verdict.messages:
                self._deliver(item)
        elif isinstance(verdict, Drop):
            self._counters.duplicates_dropped += 1
        elif isinstance(verdict, Fetch):
            self._counters.gaps_detected += 1
            task = asyncio.get_running_loop().create_task(self._fill(verdict))
            self._fills.add(task)
            task.add_done_callback(self._fills.discard)
        else:
            assert isinstance(verdict, Hold)

    async def _fill(self, fetch: Fetch) -> None:
        """Page through the history until the hole is closed or known to be permanent."""
        clean = True
        step: Fetch | None = fetch
        while step is not None:
            try:
                answer = await self._fetch_history(step.room, step.since, self._history_limit)
                outcome = self.tracker.fill(step.room, _messages(answer),
                                            answer.get("complete") is not False)
            except RequestFailed as failed:
                outcome = self.tracker.give_up(step.room, failed.code)
            except AckTimeout:
                outcome = self.tracker.give_up(step.room, "timeout")
            except ClientClosed:
                return
            clean = clean and not outcome.gaps
            self._release(outcome)
            step = outcome.fetch
        if clean:
            self._counters.gaps_filled += 1

    def _release(self, outcome: FillOutcome) -> None:
        for item in outcome.items:
            if isinstance(item, Gap):
                self._counters.gaps_unrecoverable += 1
                gap = dataclasses.replace(item, namespace=self.nsp)
                log.warning("unrecoverable gap in %s %s: after %d up to %d (%s)", self.nsp,
                            gap.room, gap.after, gap.upto, gap.reason)
                for callback in self._on_gap:
                    self._dispatcher.submit(callback, gap)
            else:
                self._deliver(item)

    def _deliver(self, message: Message) -> None:
        self._counters.messages_delivered += 1
        self._dispatcher.submit(self._hand_over, message)

    async def _hand_over(self, message: Message) -> None:
        for callback in self._on_message:
            try:
                result = callback(message)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("message callback %r failed", callback)
        pos = position_of(message)
        if pos is not None:  # saved after the app had it: a crash replays, never loses
            self._store.save(self.nsp, pos.room, pos.seq)

    async def close(self) -> None:
        fills, self._fills = set(self._fills), set()
        for task in fills:
            task.cancel()
        for task in fills:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _messages(answer: Mapping[str, Any]) -> list[Message]:
    messages = answer.get("messages")
    if not isinstance(messages, list):
        return []
    return [m for m in messages if isinstance(m, Mapping)]
