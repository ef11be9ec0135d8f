"""The process entry every service shares: settings, logging, the collector's policy
(:mod:`shared.gc_policy`), uvloop, signals.

SIGTERM and SIGINT set one stop event; each service's ``run`` drains on it and returns.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import uvloop

from shared import gc_policy, logs
from shared.config import ConfigError, ServiceSettings, load
from shared.gc_policy import FullCollections

S = TypeVar("S", bound=ServiceSettings)
Runner = Callable[[S, asyncio.Event], Coroutine[Any, Any, None]]


def main(service: str, settings_cls: type[S], runner: Runner[S]) -> None:
    try:
        settings = load(settings_cls)
    except ConfigError as exc:
        print(f"{service}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logs.setup(settings.log_level, service)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        collections = FullCollections()
        collections.start()
        try:
            await runner(settings, stop)
        finally:
            collections.stop()

    gc_policy.settle()

    try:
        uvloop.run(serve())
    except ConfigError as exc:
        print(f"{service}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
