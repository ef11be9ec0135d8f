"""When the cyclic garbage collector may stop a service's event loop.

CPython runs a full collection whenever the long-lived heap has grown by a quarter since the
last one, and each walks every tracked object. A gateway taking over the clients of a dead
one grows its heap fifteen-fold within seconds, so it collected over and over exactly when it
could least afford to: 18 full collections of 180-580 ms each in one 10,000-client recovery
storm (``bench/README.md``), every socket stalled meanwhile and NATS requests timing out.

So: what start-up made (modules, settings, schemas, the namespace table) is frozen out of
every collection; the young generations keep CPython's thresholds (cheap, and they catch most
cycles); full collections run on a timer, at most one per :data:`FULL_PERIOD_S`, instead of on
heap growth. Reference counting still frees at once everything that is not in a cycle; cyclic
garbage that reached the old generation waits at most one period.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

FULL_PERIOD_S = 10.0
NO_AUTOMATIC_FULL = 1_000_000_000
"""The old generation's threshold: middle-generation collections before a full one, never
reached, so only the timer runs full collections."""


def settle(collect: Callable[[], object] = gc.collect) -> None:
    """Collect once, freeze the survivors (start-up's objects) and leave full collections to
    :class:`FullCollections`."""
    collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, NO_AUTOMATIC_FULL)


class FullCollections:
    """A full collection every ``period_s`` on the running loop, from :meth:`start` until
    :meth:`stop`."""

    def __init__(self, period_s: float = FULL_PERIOD_S,
                 collect: Callable[[], object] = gc.collect) -> None:
        self.period_s = period_s
        self._collect = collect
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self.period_s, self._run)

    def _run(self) -> None:
        self._collect()
        self.start()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
