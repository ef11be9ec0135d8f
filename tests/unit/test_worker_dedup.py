"""De-duplication by idempotency key: the first successful reply, reduced to what is safe to
repeat, answers every retry within the window; failures are not kept; a retry that arrives
while the first attempt runs waits for it; a failing store costs the guarantee, not the
request."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from client.worker_dedup import (
    Deduplicator,
    MemoryReplyStore,
    Reply,
    dedup_key,
    repeat_reply,
)
from tests.support.fake_clock import FakeClock

FIRST: Reply = {"ok": True, "ack": [{"order": 1}], "join": ["room:a"], "data": {"n": 1},
                "publish": [{"room": "room:a", "event": "e", "data": {}}],
                "emit": [["hello"]], "disconnect": True}


def test_keys_are_kv_keys_of_namespace_event_and_id() -> None:
    assert dedup_key("/orders", "order:place", "alice:k 1") == "orders.order=3Aplace.alice=3Ak=201"


def test_a_repeat_never_publishes_emits_or_disconnects_again() -> None:
    assert repeat_reply(FIRST) == {"ok": True, "ack": [{"order": 1}], "join": ["room:a"],
                                   "data": {"n": 1}}


async def test_memory_store_forgets_after_the_window_and_beyond_its_size() -> None:
    clock = FakeClock()
    store = MemoryReplyStore(max_entries=2, window_s=10, clock=clock)
    await store.put("a", b"1")
    await store.put("b", b"2")
    assert await store.get("a") == b"1"  # a is now the most recent
    await store.put("c", b"3")
    assert await store.get("b") is None and len(store) == 2
    clock.now += 10
    assert await store.get("a") is None
    with pytest.raises(ValueError):
        MemoryReplyStore(max_entries=0)


async def test_a_retry_gets_the_first_answer_without_running_again() -> None:
    dedup = Deduplicator(MemoryReplyStore())
    runs = []

    async def compute() -> Reply:
        runs.append(1)
        return dict(FIRST)

    assert await dedup.once("k", compute) == FIRST
    assert await dedup.once("k", compute) == repeat_reply(FIRST)
    assert len(runs) == 1
    assert orjson.loads((await dedup.store.get("k")) or b"") == repeat_reply(FIRST)


async def test_failed_answers_are_not_kept() -> None:
    dedup = Deduplicator(MemoryReplyStore())
    answers = iter([{"ok": False, "error": {"code": "internal", "message": "m"}}, {"ok": True}])

    async def compute() -> Reply:
        return next(answers)

    assert (await dedup.once("k", compute))["ok"] is False
    assert await dedup.once("k", compute) == {"ok": True}


async def test_a_retry_during_the_first_attempt_waits_for_it() -> None:
    dedup = Deduplicator(MemoryReplyStore())
    release = asyncio.Event()
    runs = []

    async def compute() -> Reply:
        runs.append(1)
        await release.wait()
        return {"ok": True, "ack": [1], "emit": [["x"]]}

    first = asyncio.create_task(dedup.once("k", compute))
    await asyncio.sleep(0)
    retry = asyncio.create_task(dedup.once("k", compute))
    await asyncio.sleep(0)
    release.set()
    assert await first == {"ok": True, "ack": [1], "emit": [["x"]]}
    assert await retry == {"ok": True, "ack": [1]}
    assert len(runs) == 1


class BrokenStore:
    async def get(self, key: str) -> bytes | None:
        raise ConnectionError("away")

    async def put(self, key: str, reply: bytes) -> None:
        raise ConnectionError("away")


async def test_a_failing_store_still_answers() -> None:
    dedup = Deduplicator(BrokenStore())

    async def compute() -> Reply:
        return {"ok": True}

    assert await dedup.once("k", compute) == {"ok": True}
