"""The dispatcher runs the app's callbacks one at a time in arrival order, off the caller:
plain and coroutine functions, a failing one logged and skipped; drain waits for what was
submitted; stop cancels or grants a grace, and a callback may stop its own dispatcher."""

from __future__ import annotations

import asyncio

import pytest

from client.dispatch import Dispatcher
from tests.support.timing import UNIT


async def test_callbacks_run_in_order_one_at_a_time_off_the_caller() -> None:
    dispatcher = Dispatcher()
    dispatcher.start()
    events: list[str] = []

    async def slow(name: str) -> None:
        events.append(f"{name} start")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        events.append(f"{name} end")

    dispatcher.submit(slow, "a")
    dispatcher.submit(events.append, "b")
    dispatcher.submit(slow, "c")
    assert events == []  # submit never runs the callback itself
    await dispatcher.drain()
    assert events == ["a start", "a end", "b", "c start", "c end"]
    await dispatcher.stop()


async def test_a_failing_callback_is_logged_and_the_next_one_runs(
        caplog: pytest.LogCaptureFixture) -> None:
    dispatcher = Dispatcher()
    dispatcher.start()
    seen: list[int] = []

    def broken(value: int) -> None:
        raise ValueError(value)

    async def broken_async(value: int) -> None:
        raise KeyError(value)

    dispatcher.submit(broken, 1)
    dispatcher.submit(broken_async, 2)
    dispatcher.submit(seen.append, 3)
    await dispatcher.drain()
    assert seen == [3]
    assert sum("failed" in r.getMessage() for r in caplog.records) == 2
    await dispatcher.stop()


async def test_a_callback_may_await_what_the_caller_does_next() -> None:
    """The deadlock the module exists to avoid: the callback waits for something only the
    submitting task can provide."""
    dispatcher = Dispatcher()
    dispatcher.start()
    answered = asyncio.Event()
    done: list[str] = []

    async def waits_for_ack() -> None:
        await answered.wait()
        done.append("acked")

    dispatcher.submit(waits_for_ack)
    answered.set()  # the "reader" is not blocked by the callback
    await dispatcher.drain()
    assert done == ["acked"]
    await dispatcher.stop()


async def test_drain_without_a_running_task_returns() -> None:
    dispatcher = Dispatcher()
    await dispatcher.drain()
    await dispatcher.stop()  # never started: nothing to stop


async def test_stop_cancels_a_running_callback_and_drops_the_rest() -> None:
    dispatcher = Dispatcher()
    dispatcher.start()
    started = asyncio.Event()
    ran: list[str] = []

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    dispatcher.submit(forever)
    dispatcher.submit(ran.append, "late")
    await started.wait()
    await dispatcher.stop()
    assert ran == []

    dispatcher.start()  # what the stopped run left behind is not replayed
    dispatcher.submit(ran.append, "new")
    await dispatcher.drain()
    assert ran == ["new"]
    await dispatcher.stop()


async def test_stop_with_grace_lets_due_callbacks_run() -> None:
    dispatcher = Dispatcher()
    dispatcher.start()
    ran: list[int] = []
    for i in range(3):
        dispatcher.submit(ran.append, i)
    await dispatcher.stop(grace=5 * UNIT)
    assert ran == [0, 1, 2]


async def test_the_grace_is_bounded_by_its_value_not_by_the_callback() -> None:
    dispatcher = Dispatcher()
    dispatcher.start()
    cancelled = asyncio.Event()

    async def stuck() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    dispatcher.submit(stuck)
    await asyncio.sleep(0)
    async with asyncio.timeout(20 * UNIT):
        await dispatcher.stop(grace=0.01)
    assert cancelled.is_set()


async def test_a_callback_can_stop_its_own_dispatcher_and_is_not_cancelled() -> None:
    dispatcher = Dispatcher()
    dispatcher.start()
    steps: list[str] = []

    async def close_from_handler() -> None:
        await dispatcher.stop(grace=5 * UNIT)
        await asyncio.sleep(0)
        steps.append("finished after stop")

    dispatcher.submit(close_from_handler)
    dispatcher.submit(steps.append, "never")
    for _ in range(10):
        await asyncio.sleep(0)
    assert steps == ["finished after stop"]
    dispatcher.start()  # a stopped dispatcher can start again
    dispatcher.submit(steps.append, "again")
    await dispatcher.drain()
    assert steps == ["finished after stop", "again"]
    await dispatcher.stop()


async def test_start_twice_keeps_one_runner() -> None:
    dispatcher = Dispatcher()
    dispatcher.start()
    dispatcher.submit(lambda: None)
    dispatcher.start()  # running: the queue is kept
    ran: list[int] = []
    dispatcher.submit(ran.append, 1)
    await dispatcher.drain()
    assert ran == [1]
    await dispatcher.stop()
