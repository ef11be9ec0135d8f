"""Publishes in flight together are answered in the order they were begun, each once, and a
full pipeline makes the next publish wait."""

from __future__ import annotations

import asyncio

from gateway.broker import PublishResult
from gateway.pipelining import PublishPipeline


def test_answers_in_order_even_when_later_acks_come_first() -> None:
    answered: list[tuple[str, int | None]] = []
    pipeline: PublishPipeline[str] = PublishPipeline(
        lambda item, result: answered.append((item, None if result is None else result.seq)))
    first, second, third = pipeline.begin("a"), pipeline.begin("b"), pipeline.begin("c")
    third(PublishResult(3))
    second(PublishResult(2))
    assert answered == []
    first(PublishResult(1))
    assert answered == [("a", 1), ("b", 2), ("c", 3)]


def test_a_failed_publish_is_answered_with_none_in_its_place() -> None:
    answered: list[tuple[str, PublishResult | None]] = []
    pipeline: PublishPipeline[str] = PublishPipeline(
        lambda item, result: answered.append((item, result)))
    first, second = pipeline.begin("x"), pipeline.begin("y")
    second(PublishResult(5))
    first(None)
    assert answered == [("x", None), ("y", PublishResult(5))]


def test_a_result_is_taken_once() -> None:
    answered: list[PublishResult | None] = []
    pipeline: PublishPipeline[str] = PublishPipeline(lambda _, result: answered.append(result))
    done = pipeline.begin("x")
    done(PublishResult(1))
    done(None)
    assert answered == [PublishResult(1)]


def test_a_publish_answered_while_it_is_begun_goes_out_at_once() -> None:
    answered: list[str] = []
    pipeline: PublishPipeline[str] = PublishPipeline(lambda item, _: answered.append(item))
    pipeline.begin("now")(PublishResult())
    assert answered == ["now"]


def test_a_publish_that_could_not_be_sent_leaves_no_slot() -> None:
    answered: list[str] = []
    pipeline: PublishPipeline[str] = PublishPipeline(lambda item, _: answered.append(item),
                                                     max_in_flight=1)
    pipeline.begin("never sent")
    pipeline.cancel_last()
    assert not pipeline.full
    pipeline.begin("sent")(PublishResult(1))
    assert answered == ["sent"]


async def test_a_full_pipeline_makes_the_next_publish_wait() -> None:
    pipeline: PublishPipeline[int] = PublishPipeline(lambda *_: None, max_in_flight=2)
    first = pipeline.begin(0)
    pipeline.begin(1)
    assert pipeline.full
    waiting = asyncio.create_task(pipeline.wait_room())
    await asyncio.sleep(0)
    assert not waiting.done()
    first(PublishResult(1))
    await asyncio.wait_for(waiting, 1)


async def test_closing_drops_what_is_in_flight_and_frees_waiters() -> None:
    answered: list[int] = []
    pipeline: PublishPipeline[int] = PublishPipeline(lambda item, _: answered.append(item),
                                                     max_in_flight=1)
    late = pipeline.begin(0)
    waiting = asyncio.create_task(pipeline.wait_room())
    await asyncio.sleep(0)
    pipeline.close()
    await asyncio.wait_for(waiting, 1)
    late(PublishResult(1))
    assert answered == []
