"""``python -m presence``: one presence replica (run as many as the load needs)."""

import asyncio

from presence.server import run
from shared.config import PresenceSettings
from shared.service import main


async def serve(settings: PresenceSettings, stop: asyncio.Event) -> None:
    await run(settings, stop)


main("presence", PresenceSettings, serve)
