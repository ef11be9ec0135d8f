"""Cleaning up after a dead gateway: drop its connections from every user entry.

Its entries stopped counting the moment its liveness key expired (admission and lookups
filter by live gateways), so this is housekeeping, not correctness: it keeps entries from
growing with the dead. Every router replica reaps; the entries change by compare-and-set, so
doing it twice is harmless. Each user entry is read first and rewritten only if it holds
the gateway, a few at a time; if the gateway comes back under the same id, reaping stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from router.metrics import RouterMetrics
from shared.registry import UserEntry
from shared.registry_kv import RegistryUnavailable

log = logging.getLogger(__name__)

CONCURRENCY = 8


def holds(entry: UserEntry, gateway: str) -> bool:
    return any(info.gateway == gateway for info in entry.connections.values())


class Reaper:
    def __init__(
        self,
        users: Callable[[], Awaitable[list[str]]],
        entry: Callable[[str], Awaitable[UserEntry]],
        drop: Callable[[str, str], Awaitable[None]],
        is_live: Callable[[str], bool],
        metrics: RouterMetrics | None = None,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self._users = users
        self._entry = entry
        self._drop = drop
        self._is_live = is_live
        self._metrics = metrics
        self._concurrency = concurrency
        self._running: dict[str, asyncio.Task[None]] = {}

    def gateway_gone(self, gateway: str) -> None:
        """The registry watch's callback: reap in the background, once per gateway at a
        time."""
        if gateway in self._running:
            return
        task = asyncio.get_running_loop().create_task(self._reap_logged(gateway))
        self._running[gateway] = task
        task.add_done_callback(lambda _: self._running.pop(gateway, None))

    async def _reap_logged(self, gateway: str) -> None:
        try:
            dropped, failed = await self.reap(gateway)
        except Exception:
            log.exception("reaping gateway %s failed", gateway)
            self._count("error")
            return
        self._count("ok" if not failed else "partial")
        if dropped or failed:
            log.info("gateway %s is gone: dropped its connections from %d user entries "
                     "(%d could not be changed now)", gateway, dropped, failed)

    async def reap(self, gateway: str) -> tuple[int, int]:
        """Drop ``gateway`` from every user entry that holds it: (dropped, failed)."""
        pending = iter(await self._users())
        dropped = failed = 0

        async def worker() -> None:
            nonlocal dropped, failed
            for user in pending:  # one shared iterator: each user is taken by one worker
                if self._is_live(gateway):
                    return  # it came back under the same id: its entries are current again
                try:
                    if holds(await self._entry(user), gateway):
                        await self._drop(user, gateway)
                        dropped += 1
                except RegistryUnavailable:
                    failed += 1

        await asyncio.gather(*(worker() for _ in range(self._concurrency)))
        if self._metrics is not None:
            self._metrics.reaped_users.inc(dropped)
        return dropped, failed

    def _count(self, status: str) -> None:
        if self._metrics is not None:
            self._metrics.reaps.labels(status).inc()

    async def close(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
