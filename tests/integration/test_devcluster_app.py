"""``python -m devcluster --app examples.orderbook --app-replicas 2``: the example's workers
start as children (with its namespaces.toml handed to every service), answer through the
gateways, de-duplicate a retried order across replicas, and stop with the cluster; the
demo server shows the example's page."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from tests.integration.test_devcluster import Run, alive, free_base_port, read_ready
from tests.support.timing import UNIT

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def devcluster(tmp_path: Path) -> AsyncIterator[Run]:
    stderr_path = tmp_path / "devcluster.stderr"
    env = {key: value for key, value in os.environ.items() if key != "SB_NAMESPACES_FILE"}
    env.update(SB_ENV="development", SB_SUBJECT_PREFIX=f"app{uuid.uuid4().hex[:6]}")
    with stderr_path.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "devcluster", "--gateways", "2",
            "--base-port", str(free_base_port()), "--app", "examples.orderbook",
            "--app-replicas", "2", cwd=ROOT, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=stderr)
    run = Run(proc, stderr_path)
    try:
        yield run
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for pid in run.child_pids().values():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


async def connect(url: str, **auth: str) -> tuple[socketio.AsyncClient, list[Any]]:
    sio = socketio.AsyncClient(reconnection=False)
    heard: list[Any] = []
    sio.on("book:welcome", lambda *args: heard.append(args[0]), namespace="/orders")
    await sio.connect(url, namespaces=["/orders"], auth=auth, wait_timeout=10 * UNIT)
    return sio, heard


async def refused_connect(url: str, refused: list[Any]) -> None:
    sio = socketio.AsyncClient(reconnection=False)
    sio.on("connect_error", refused.append, namespace="/orders")
    await sio.connect(url, namespaces=["/orders"], auth={"api_key": "wrong", "name": "eve"},
                      wait_timeout=10 * UNIT)


async def test_the_example_application_runs_under_devcluster(devcluster: Run) -> None:
    ready = await read_ready(devcluster)
    gateways = [str(url) for url in ready["gateways"]]  # type: ignore[attr-defined]
    assert {"app-1", "app-2"} <= set(devcluster.child_pids())

    refused: list[Any] = []
    with pytest.raises(socketio.exceptions.ConnectionError):
        await refused_connect(gateways[0], refused)
    assert refused == [{"message": "bad api key",
                        "data": {"hint": "connect with auth: {api_key, name}"}}]
    sio, heard = await connect(gateways[1], api_key="demo-key", name="ann")
    try:
        order = {"id": "o-1", "side": "buy", "price": 101.5, "qty": 3}
        ack = await sio.call("order:place", order, namespace="/orders", timeout=10 * UNIT)
        assert ack == {"ok": True, "id": "o-1", "placed": 1}
        retries = [await sio.call("order:place", order, namespace="/orders",
                                  timeout=10 * UNIT) for _ in range(4)]
        assert retries == [ack] * 4  # the same answer from either replica: one KV bucket
        bad = await sio.call("order:place", {**order, "id": "o-2", "qty": 0},
                             namespace="/orders", timeout=10 * UNIT)
        assert bad["ok"] is False and bad["error"]["data"] == {"field": "qty"}
    finally:
        await sio.disconnect()
    assert heard and heard[0]["user"] == "ann"

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10 * UNIT)) as http:
        async with http.get(f"{ready['demo']}/orderbook/") as page:
            assert page.status == 200 and "Order book" in await page.text()
        async with http.get(f"{ready['demo']}/orderbook/orderbook.js") as script:
            assert script.status == 200
        async with http.get(f"{ready['demo']}/orderbook/namespaces.toml") as hidden:
            assert hidden.status == 404

    pids = devcluster.child_pids()
    devcluster.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(devcluster.proc.wait(), 60 * UNIT) == 0, devcluster.stderr()
    assert [name for name, pid in pids.items() if alive(pid)] == []
