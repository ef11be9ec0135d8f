"""Publishes in flight together are answered in the order they were begun, and a full
pipeline makes the next publish wait."""

from __future__ import annotations

import asyncio

from gateway.broker import BrokerUnavailable, PublishResult
from gateway.pipelining import PublishPipeline


async def test_answers_in_order_even_when_later_acks_come_first() -> None:
    answered: list[tuple[str, int | None]] = []
    pipeline: PublishPipeline[str] = PublishPipeline(
        lambda item, result: answered.append((item, None if result is None else result.seq)))
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    await pipeline.add(first, "a")
    await pipeline.add(second, "b")
    second.set_result(PublishResult(2))
    await asyncio.sleep(0)
    assert answered == []
    first.set_result(PublishResult(1))
    for _ in range(5):
        await asyncio.sleep(0)
    assert answered == [("a", 1), ("b", 2)]
    await pipeline.close()


async def test_a_failed_publish_is_answered_with_none() -> None:
    answered: list[PublishResult | None] = []
    pipeline: PublishPipeline[str] = PublishPipeline(lambda _, result: answered.append(result))
    failed = asyncio.get_running_loop().create_future()
    failed.set_exception(BrokerUnavailable("down"))
    await pipeline.add(failed, "x")
    for _ in range(5):
        await asyncio.sleep(0)
    assert answered == [None]
    await pipeline.close()


async def test_a_full_pipeline_makes_the_next_publish_wait() -> None:
    pipeline: PublishPipeline[int] = PublishPipeline(lambda *_: None, max_in_flight=2)
    loop = asyncio.get_running_loop()
    pending = [loop.create_future() for _ in range(3)]
    await pipeline.add(pending[0], 0)
    await pipeline.add(pending[1], 1)
    third = asyncio.create_task(pipeline.add(pending[2], 2))
    await asyncio.sleep(0)
    assert not third.done()
    pending[0].set_result(PublishResult(1))
    await asyncio.wait_for(third, 1)
    await pipeline.close()
