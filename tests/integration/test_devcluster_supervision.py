"""devcluster survives what production survives, and leaves nothing behind.

Behind its balancer (round-robin, no stickiness), a SIGKILLed gateway is restarted under its
id while the other keeps answering; devcluster SIGKILLed takes every child with it within
2 s; a second SIGTERM stops at once instead of waiting for a gateway's drain of a held socket.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time

import aiohttp
import pytest

from tests.integration.test_devcluster import Run, alive, devcluster, read_ready
from tests.support.timing import UNIT

pytestmark = pytest.mark.integration

__all__ = ["devcluster"]


async def handshake_owner(session: aiohttp.ClientSession, lb: str) -> str:
    """Open a polling session through the balancer (a new TCP connection each time) and
    return the gateway its sid names."""
    async with session.get(f"{lb}/socket.io/?EIO=4&transport=polling") as response:
        assert response.status == 200, await response.text()
        body = await response.text()
    return str(json.loads(body[1:])["sid"]).rsplit("~", 1)[1]


def fresh_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True),
                                 timeout=aiohttp.ClientTimeout(total=5 * UNIT))


async def wait_until(predicate: object, within: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within:g}s: {what}")
        await asyncio.sleep(0.1)


async def test_the_balancer_spreads_and_a_killed_gateway_comes_back(devcluster: Run) -> None:
    ready = await read_ready(devcluster)
    lb = str(ready["lb"])
    async with fresh_session() as session:
        owners = {await handshake_owner(session, lb) for _ in range(4)}
        assert owners == {"gw-1", "gw-2"}

        old = devcluster.child_pids()["gw-1"]
        demo = str(ready["demo"])
        async with session.get(f"{demo}/dev/gateways") as response:
            listed = (await response.json())["gateways"]
        assert {g["id"]: g["pid"] for g in listed} == {
            name: pid for name, pid in devcluster.child_pids().items() if name.startswith("gw-")}
        # The demo page's "kill my gateway" button: a SIGKILL, as kill -9 would.
        async with session.post(f"{demo}/dev/kill-gateway", json={"gateway": "gw-1"}) as answer:
            assert (await answer.json())["pid"] == old
        # Until the balancer's health check notices, a refused connect moves on to gw-2.
        for _ in range(6):
            assert await handshake_owner(session, lb) in {"gw-1", "gw-2"}
        await wait_until(lambda: devcluster.child_pids()["gw-1"] != old, 20 * UNIT,
                         "gw-1 restarted")
        assert alive(devcluster.child_pids()["gw-1"])
        assert "restarting gw-1" in devcluster.stderr()
        owners = set()
        deadline = time.monotonic() + 30 * UNIT
        while owners != {"gw-1", "gw-2"} and time.monotonic() < deadline:
            owners.add(await handshake_owner(session, lb))
            await asyncio.sleep(0.2)
        assert owners == {"gw-1", "gw-2"}, devcluster.stderr()
    assert devcluster.proc.returncode is None, "a dead gateway must not stop the cluster"


async def test_no_child_outlives_a_killed_devcluster(devcluster: Run) -> None:
    await read_ready(devcluster)
    pids = devcluster.child_pids()
    assert {"nats", "router", "presence", "gw-1", "gw-2"} <= set(pids)
    devcluster.proc.kill()
    await devcluster.proc.wait()
    await wait_until(lambda: not any(alive(pid) for pid in pids.values()), 2.0 + UNIT,
                     f"every child of a SIGKILLed devcluster gone: {pids}")


@pytest.mark.parametrize("devcluster", [{"SB_DRAIN_RATE": "0.5"}], indirect=True)
async def test_a_second_stop_signal_stops_at_once(devcluster: Run) -> None:
    ready = await read_ready(devcluster)
    pids = devcluster.child_pids()
    url = f"{ready['lb']}/socket.io/?EIO=4&transport=websocket"
    async with fresh_session() as session, session.ws_connect(url) as held:
        assert (await held.receive_str()).startswith("0{")
        # The drain's 1012 reaches the socket through the balancer, and at 0.5 closes/s the
        # drain lasts the whole window (2 s in devcluster), so the first signal has not
        # stopped it yet.
        devcluster.proc.send_signal(signal.SIGTERM)
        closing = await held.receive(5 * UNIT)
        assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1012), closing
        await asyncio.sleep(0.2)
        assert devcluster.proc.returncode is None, devcluster.stderr()
        devcluster.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(devcluster.proc.wait(), 10 * UNIT)
    assert "second stop signal" in devcluster.stderr()
    assert [name for name, pid in pids.items() if alive(pid)] == []

