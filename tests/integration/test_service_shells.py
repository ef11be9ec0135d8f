"""The router's and the presence service's wiring (``router.server.run``,
``presence.server.run``) in this process against a real nats-server: each becomes ready on
its HTTP port, answers there, and stops cleanly when told to — the same shells the process
tests start with ``python -m``, here where a failure shows its traceback."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from devcluster.natsserver import NatsServer, free_ports
from presence import server as presence_server
from router import server as router_server
from shared.config import PresenceSettings, RouterSettings, load
from tests.support.timing import UNIT

pytestmark = pytest.mark.integration


async def ready(port: int) -> dict[str, int]:
    """Status of /healthz, /readyz and /metrics once /readyz answers 200 (bounded)."""
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http, asyncio.timeout(20 * UNIT):
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url + "/readyz") as answer:
                    if answer.status == 200:
                        break
            await asyncio.sleep(0.05)
        statuses = {}
        for path in ("/healthz", "/readyz", "/metrics"):
            async with http.get(url + path) as answer:
                statuses[path] = answer.status
        return statuses


async def run_until_ready(run: Callable[[asyncio.Event], Awaitable[None]],
                          port: int) -> dict[str, int]:
    stop = asyncio.Event()
    task = asyncio.create_task(run(stop))
    try:
        return await ready(port)
    finally:
        stop.set()
        async with asyncio.timeout(20 * UNIT):
            await task


async def test_the_router_shell_serves_and_stops(nats_server: NatsServer) -> None:
    (port,) = free_ports(1)
    settings = load(RouterSettings, {
        "SB_NATS_URL": nats_server.url, "SB_PORT": str(port), "SB_HOST": "127.0.0.1",
        "SB_API_KEY": secrets.token_urlsafe(32), "SB_SUBJECT_PREFIX": "shellr",
        "SB_INSTANCE_ID": "router-shell"})
    statuses = await run_until_ready(lambda stop: router_server.run(settings, stop), port)
    assert statuses == {"/healthz": 200, "/readyz": 200, "/metrics": 200}


async def test_the_presence_shell_serves_and_stops(nats_server: NatsServer) -> None:
    (port,) = free_ports(1)
    settings = load(PresenceSettings, {
        "SB_NATS_URL": nats_server.url, "SB_PORT": str(port), "SB_HOST": "127.0.0.1",
        "SB_SUBJECT_PREFIX": "shellp", "SB_INSTANCE_ID": "presence-shell"})
    statuses = await run_until_ready(lambda stop: presence_server.run(settings, stop), port)
    assert statuses == {"/healthz": 200, "/readyz": 200, "/metrics": 200}
