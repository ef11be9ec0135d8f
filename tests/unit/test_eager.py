"""Running a coroutine eagerly: no task when it never waits, a task that finishes the same
coroutine (with the same results, errors and cancellations) when it does."""

from __future__ import annotations

import asyncio

import pytest

from gateway.eager import start


async def test_a_coroutine_that_never_waits_runs_inside_the_call() -> None:
    seen: list[str] = []

    async def sync() -> None:
        seen.append("ran")

    assert start(sync()) is None
    assert seen == ["ran"]


async def test_a_coroutine_that_waits_is_finished_by_a_task() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[int] = loop.create_future()
    seen: list[object] = []

    async def waits() -> None:
        seen.append("before")
        seen.append(await future)
        await asyncio.sleep(0)
        seen.append(await asyncio.wait_for(asyncio.sleep(0, "timed"), 1.0))

    task = start(waits())
    assert task is not None and seen == ["before"]
    future.set_result(7)
    await task
    assert seen == ["before", 7, "timed"]


async def test_an_error_before_the_first_wait_is_raised_to_the_caller() -> None:
    async def fails() -> None:
        raise ValueError("now")

    with pytest.raises(ValueError, match="now"):
        start(fails())


async def test_an_error_after_a_wait_ends_the_task_and_reaches_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()
    caught: list[BaseException] = []

    async def handles() -> None:
        try:
            await future
        except KeyError as exc:
            caught.append(exc)
            raise RuntimeError("then") from exc

    task = start(handles())
    assert task is not None
    future.set_exception(KeyError("k"))
    with pytest.raises(RuntimeError, match="then"):
        await task
    assert isinstance(caught[0], KeyError)


async def test_a_cancelled_future_is_a_cancellation_inside_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()
    seen: list[str] = []

    async def cancelled() -> None:
        try:
            await future
        except asyncio.CancelledError:
            seen.append("cancelled")

    task = start(cancelled())
    assert task is not None
    future.cancel()
    await task
    assert seen == ["cancelled"]


async def test_one_future_awaited_by_two_eager_coroutines_in_one_pass() -> None:
    shared: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    results: list[int] = []

    async def waiter() -> None:
        results.append(await shared)

    first, second = start(waiter()), start(waiter())
    assert first is not None and second is not None
    shared.set_result(7)
    await asyncio.wait_for(asyncio.gather(first, second), 1)
    assert results == [7, 7]
