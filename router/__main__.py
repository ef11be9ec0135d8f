"""``python -m router``: the connection registry and server API (health/metrics for now)."""

import asyncio

from shared.config import RouterSettings
from shared.nats_service import run_basic
from shared.service import main


async def run(settings: RouterSettings, stop: asyncio.Event) -> None:
    await run_basic("router", settings, stop)


main("router", RouterSettings, run)
