"""Publishes in flight together are answered in the order they were begun, each once, and a
full queue makes the next publish wait."""

from __future__ import annotations

import asyncio

from gateway.broker import PublishResult
from gateway.publish_queue import PublishQueue


def test_answers_in_order_even_when_later_acks_come_first() -> None:
    answered: list[tuple[str, int | None]] = []
    queue: PublishQueue[str] = PublishQueue(
        lambda item, result: answered.append((item, None if result is None else result.seq)))
    first, second, third = queue.begin("a"), queue.begin("b"), queue.begin("c")
    third(PublishResult(3))
    second(PublishResult(2))
    assert answered == []
    first(PublishResult(1))
    assert answered == [("a", 1), ("b", 2), ("c", 3)]


def test_a_failed_publish_is_answered_with_none_in_its_place() -> None:
    answered: list[tuple[str, PublishResult | None]] = []
    queue: PublishQueue[str] = PublishQueue(
        lambda item, result: answered.append((item, result)))
    first, second = queue.begin("x"), queue.begin("y")
    second(PublishResult(5))
    first(None)
    assert answered == [("x", None), ("y", PublishResult(5))]


def test_a_result_is_taken_once() -> None:
    answered: list[PublishResult | None] = []
    queue: PublishQueue[str] = PublishQueue(lambda _, result: answered.append(result))
    done = queue.begin("x")
    done(PublishResult(1))
    done(None)
    assert answered == [PublishResult(1)]


def test_a_publish_answered_while_it_is_begun_goes_out_at_once() -> None:
    answered: list[str] = []
    queue: PublishQueue[str] = PublishQueue(lambda item, _: answered.append(item))
    queue.begin("now")(PublishResult())
    assert answered == ["now"]


def test_a_publish_that_could_not_be_sent_leaves_no_slot() -> None:
    answered: list[str] = []
    queue: PublishQueue[str] = PublishQueue(lambda item, _: answered.append(item),
                                                     max_in_flight=1)
    queue.begin("never sent")
    queue.cancel_last()
    assert not queue.full
    queue.begin("sent")(PublishResult(1))
    assert answered == ["sent"]


async def test_a_full_pipeline_makes_the_next_publish_wait() -> None:
    queue: PublishQueue[int] = PublishQueue(lambda *_: None, max_in_flight=2)
    first = queue.begin(0)
    queue.begin(1)
    assert queue.full
    waiting = asyncio.create_task(queue.wait_room())
    await asyncio.sleep(0)
    assert not waiting.done()
    first(PublishResult(1))
    await asyncio.wait_for(waiting, 1)


async def test_closing_drops_what_is_in_flight_and_frees_waiters() -> None:
    answered: list[int] = []
    queue: PublishQueue[int] = PublishQueue(lambda item, _: answered.append(item),
                                                     max_in_flight=1)
    late = queue.begin(0)
    waiting = asyncio.create_task(queue.wait_room())
    await asyncio.sleep(0)
    queue.close()
    await asyncio.wait_for(waiting, 1)
    late(PublishResult(1))
    assert answered == []
