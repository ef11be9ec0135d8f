"""The feed carries the tracker's decisions out on a fake ``room:history``: messages handed
to the callbacks once and in room order, duplicates counted and dropped, positions saved
only after the callbacks returned, gaps filled page by page while later messages wait, and
holes that cannot be filled reported to ``on_gap`` with the namespace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from client.counters import Counters
from client.dispatch import Callback, Dispatcher
from client.errors import AckTimeout, ClientClosed, RequestFailed
from client.feed import Feed
from client.merge import Message
from client.positions import MemoryPositionStore
from client.sequence import Gap, SequenceTracker

NSP = "/chat"


def msg(seq: int, prev: int, room: str = "room:a") -> dict[str, Any]:
    return {"room": room, "seq": seq, "prev": prev, "text": f"m{seq}"}


@dataclass
class FakeHistory:
    """``room:history`` answers (or errors) in order; each call recorded, and held while
    ``gate`` is closed."""

    answers: list[Mapping[str, Any] | Exception] = field(default_factory=list)
    calls: list[tuple[str, int, int]] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.gate.set()

    async def __call__(self, room: str, since: int, limit: int) -> Mapping[str, Any]:
        self.calls.append((room, since, limit))
        await self.gate.wait()
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


@dataclass
class Rig:
    history: FakeHistory
    store: MemoryPositionStore
    counters: Counters
    dispatcher: Dispatcher
    delivered: list[Message]
    gaps: list[Gap]
    feed: Feed
    saved_when_called: list[dict[str, int]]

    async def settle(self) -> None:
        """Let the fill tasks run (the fake history answers at once), then the callbacks."""
        for _ in range(20):
            await asyncio.sleep(0)
        await self.dispatcher.drain()


def history_page(*messages: Message, complete: bool = True) -> dict[str, Any]:
    return {"ok": True, "messages": list(messages), "complete": complete}


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    history, store, counters, dispatcher = FakeHistory(), MemoryPositionStore(), Counters(), \
        Dispatcher()
    delivered: list[Message] = []
    gaps: list[Gap] = []
    saved: list[dict[str, int]] = []

    def on_message(message: Message) -> None:
        saved.append(store.load(NSP))
        delivered.append(message)

    callbacks: list[Callback] = [on_message]
    feed = Feed(NSP, SequenceTracker(), store, counters, dispatcher, history, 2, callbacks,
                [gaps.append])
    dispatcher.start()
    try:
        yield Rig(history, store, counters, dispatcher, delivered, gaps, feed, saved)
    finally:
        await feed.close()
        await dispatcher.stop()


def seqs(messages: list[Message]) -> list[int]:
    return [m["seq"] for m in messages]


async def test_in_order_messages_are_delivered_and_saved_after_the_callback(rig: Rig) -> None:
    for message in (msg(1, 0), msg(2, 1), msg(3, 2)):
        rig.feed.receive(message)
    await rig.settle()
    assert seqs(rig.delivered) == [1, 2, 3]
    assert rig.saved_when_called == [{}, {"room:a": 1}, {"room:a": 2}]
    assert rig.store.load(NSP) == {"room:a": 3}
    assert rig.counters.messages_delivered == 3
    assert rig.history.calls == []


async def test_duplicates_are_dropped_and_counted(rig: Rig) -> None:
    for message in (msg(1, 0), msg(2, 1), msg(1, 0), msg(2, 1)):
        rig.feed.receive(message)
    await rig.settle()
    assert seqs(rig.delivered) == [1, 2]
    assert rig.counters.duplicates_dropped == 2
    assert rig.counters.messages_delivered == 2


async def test_a_message_without_a_position_is_delivered_and_not_saved(rig: Rig) -> None:
    rig.feed.receive({"room": "room:a", "text": "ephemeral"})
    await rig.settle()
    assert rig.delivered == [{"room": "room:a", "text": "ephemeral"}]
    assert rig.store.load(NSP) == {}


async def test_a_gap_is_filled_from_history_while_later_messages_wait(rig: Rig) -> None:
    rig.history.gate.clear()
    rig.history.answers.append(history_page(msg(2, 1), msg(3, 2)))
    rig.feed.receive(msg(1, 0))
    rig.feed.receive(msg(4, 3))  # prev 3 > 1: a hole
    rig.feed.receive(msg(5, 4))  # held behind it
    rig.feed.receive(msg(4, 3))  # a copy of a held one
    await rig.settle()
    assert seqs(rig.delivered) == [1]
    assert rig.history.calls == [("room:a", 1, 2)]

    rig.history.gate.set()
    await rig.settle()
    assert seqs(rig.delivered) == [1, 2, 3, 4, 5]
    assert rig.store.load(NSP) == {"room:a": 5}
    assert (rig.counters.gaps_detected, rig.counters.gaps_filled,
            rig.counters.gaps_unrecoverable) == (1, 1, 0)
    assert rig.counters.duplicates_dropped == 1
    assert rig.gaps == []


async def test_a_long_gap_is_fetched_page_by_page(rig: Rig) -> None:
    rig.history.answers += [history_page(msg(2, 1), msg(3, 2)),
                            history_page(msg(4, 3), msg(5, 4)),
                            history_page(msg(6, 5))]
    rig.feed.receive(msg(1, 0))
    rig.feed.receive(msg(7, 6))
    await rig.settle()
    assert [since for _, since, _ in rig.history.calls] == [1, 3, 5]
    assert seqs(rig.delivered) == [1, 2, 3, 4, 5, 6, 7]
    assert rig.counters.gaps_filled == 1


async def test_rooms_are_independent(rig: Rig) -> None:
    rig.history.gate.clear()
    rig.history.answers.append(history_page(msg(2, 1)))
    rig.feed.receive(msg(1, 0))
    rig.feed.receive(msg(3, 2))  # room:a waits for its fill
    rig.feed.receive(msg(10, 0, room="room:b"))  # room:b does not
    await rig.settle()
    assert seqs(rig.delivered) == [1, 10]
    rig.history.gate.set()
    await rig.settle()
    assert seqs(rig.delivered) == [1, 10, 2, 3]


async def test_a_trimmed_history_is_reported_as_a_gap_with_the_namespace(rig: Rig) -> None:
    rig.history.answers.append(history_page(msg(4, 3), complete=False))
    rig.feed.receive(msg(1, 0))
    rig.feed.receive(msg(5, 4))
    await rig.settle()
    assert rig.gaps == [Gap("room:a", 1, 3, "incomplete", NSP)]
    assert seqs(rig.delivered) == [1, 4, 5]
    assert (rig.counters.gaps_detected, rig.counters.gaps_filled,
            rig.counters.gaps_unrecoverable) == (1, 0, 1)


@pytest.mark.parametrize(("error", "reason"), [
    (RequestFailed("room:history", "not_recoverable", "trimmed"), "not_recoverable"),
    (AckTimeout("room:history", 3), "timeout"),
])
async def test_a_failed_history_request_gives_up_and_releases_what_is_held(
        rig: Rig, error: Exception, reason: str) -> None:
    rig.history.answers.append(error)
    rig.feed.receive(msg(1, 0))
    rig.feed.receive(msg(4, 3))
    rig.feed.receive(msg(5, 4))
    await rig.settle()
    assert rig.gaps == [Gap("room:a", 1, 3, reason, NSP)]
    assert seqs(rig.delivered) == [1, 4, 5]
    assert rig.store.load(NSP) == {"room:a": 5}
    assert rig.counters.gaps_unrecoverable == 1 and rig.counters.gaps_filled == 0


async def test_a_closed_client_ends_the_fill_quietly(rig: Rig) -> None:
    rig.history.answers.append(ClientClosed())
    rig.feed.receive(msg(1, 0))
    rig.feed.receive(msg(4, 3))
    await rig.settle()
    assert seqs(rig.delivered) == [1]
    assert rig.gaps == [] and rig.counters.gaps_unrecoverable == 0


async def test_a_history_answer_without_a_message_list_is_an_empty_page(rig: Rig) -> None:
    rig.history.answers.append({"ok": True, "messages": "nope", "complete": True})
    rig.feed.receive(msg(1, 0))
    rig.feed.receive(msg(3, 2))
    await rig.settle()
    assert rig.gaps == [Gap("room:a", 1, 2, "missing", NSP)]
    assert seqs(rig.delivered) == [1, 3]


async def test_close_cancels_fills_in_progress(rig: Rig) -> None:
    rig.history.gate.clear()
    rig.feed.receive(msg(1, 0))
    rig.feed.receive(msg(3, 2))
    await rig.settle()
    assert len(rig.history.calls) == 1
    await rig.feed.close()
    rig.history.gate.set()
    await rig.settle()
    assert seqs(rig.delivered) == [1]


async def test_a_failing_callback_does_not_stop_the_others_or_the_save(
        caplog: pytest.LogCaptureFixture) -> None:
    store, dispatcher = MemoryPositionStore(), Dispatcher()
    seen: list[int] = []

    def broken(message: Message) -> None:
        raise RuntimeError("app bug")

    async def works(message: Message) -> None:
        seen.append(message["seq"])

    feed = Feed(NSP, SequenceTracker(), store, Counters(), dispatcher, FakeHistory(), 10,
                [broken, works], [])
    dispatcher.start()
    feed.receive(msg(1, 0))
    await dispatcher.drain()
    await dispatcher.stop()
    assert seen == [1]
    assert store.load(NSP) == {"room:a": 1}
    assert "message callback" in caplog.text
