"""``python -m presence``: online/room/typing state (health/metrics for now)."""

import asyncio

from shared.config import PresenceSettings
from shared.nats_service import run_basic
from shared.service import main


async def run(settings: PresenceSettings, stop: asyncio.Event) -> None:
    await run_basic("presence", settings, stop)


main("presence", PresenceSettings, run)
