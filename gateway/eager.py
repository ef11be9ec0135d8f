"""Run a coroutine at once, inside the caller's callback, and make a task only if it waits.

Most client frames produce actions that never wait (frames to the outbox, a metric, a publish
into the NATS client's pending buffer), so a task per frame would cost a task object and a
loop pass per frame, and a burst of frames read together would take one pass each. Running
the coroutine eagerly handles such a burst in one ``data_received``; only an action that
really suspends (a NATS round trip) gets a task, which finishes the same coroutine. Python
3.12's ``eager_task_factory`` does this for every task; the gateway supports 3.11.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any


def start(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """``None`` if ``coro`` finished without waiting; else the task that is finishing it.
    An exception raised before the first wait propagates to the caller, like a call."""
    try:
        waiting_for = coro.send(None)
    except StopIteration:
        return None
    if waiting_for is not None:
        # As Task.__step does at once: a future left flagged "blocking" until the task below
        # runs would be refused by anyone else awaiting it in this same loop pass.
        waiting_for._asyncio_future_blocking = False
    return asyncio.get_running_loop().create_task(_finish(coro, waiting_for))


async def _finish(coro: Coroutine[Any, Any, None], waiting_for: Any) -> None:
    """Wait for what ``coro`` waits for, then resume it, as a task would. ``coro`` reads the
    outcome (result, exception or cancellation) from the future itself when resumed."""
    while True:
        if waiting_for is None:  # a bare yield (asyncio.sleep(0)): resume on the next pass
            await asyncio.sleep(0)
        else:
            # Yielded as "blocking" to us, not to a task: clear the flag as Task.__step does,
            # or awaiting it here is refused.
            waiting_for._asyncio_future_blocking = False
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await waiting_for
        try:
            waiting_for = coro.send(None)
        except StopIteration:
            return
