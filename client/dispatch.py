"""Runs the app's callbacks one at a time, in arrival order, off the reader task.

The reader must never wait for the app: a callback that awaits a request would otherwise
deadlock (the ack it waits for is read by the very task it blocks). Callbacks may be plain
functions or coroutine functions; an exception in one is logged and the next one runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Callback = Callable[..., Any]


class Dispatcher:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[tuple[Callback, tuple[Any, ...]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._queue = asyncio.Queue()  # what a stopped run left behind is not replayed
            self._task = asyncio.get_running_loop().create_task(self._run(self._queue))

    def submit(self, callback: Callback, *args: Any) -> None:
        self._queue.put_nowait((callback, args))

    async def _run(self, queue: asyncio.Queue[tuple[Callback, tuple[Any, ...]]]) -> None:
        while queue is self._queue:
            callback, args = await queue.get()
            try:
                result = callback(*args)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("callback %r failed", callback)
            finally:
                queue.task_done()

    async def drain(self) -> None:
        """Wait until every callback submitted so far has run."""
        if self._task is not None and not self._task.done():
            await self._queue.join()

    async def stop(self, grace: float = 0.0) -> None:
        """Stop running callbacks, after up to ``grace`` seconds for those already due (the
        app was told about them: counters count them). A callback that stops its own
        dispatcher (``close()`` from a handler) is not cancelled: the loop ends when that
        callback returns."""
        task = self._task
        if task is None:
            return
        if task is not asyncio.current_task() and grace > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._queue.join()
        self._task = None
        self._queue = asyncio.Queue()
        if task is asyncio.current_task():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
