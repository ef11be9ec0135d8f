"""``python -m devcluster`` as a person runs it: one READY line, live URLs, clean stop.

The subprocess runs from a scratch directory, so this also shows devcluster works from
anywhere after ``pip install -e .``. Its stderr goes to a file: the ``started NAME pid=PID``
lines there say which processes must be gone after SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import jwt
import pytest

from devcluster import ports
from tests.support.timing import UNIT

pytestmark = pytest.mark.integration

SECRET = "devcluster-test-secret-of-at-least-32-bytes"
STARTED = re.compile(r"^devcluster: started (\S+) pid=(\d+)", re.MULTILINE)
GATEWAYS = 2


@dataclass
class Run:
    proc: asyncio.subprocess.Process
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def child_pids(self) -> dict[str, int]:
        return {name: int(pid) for name, pid in STARTED.findall(self.stderr())}


def free_base_port() -> int:
    """A base whose balancer, gateway and demo ports are all free."""
    return ports.free_base_port(GATEWAYS)


def alive(pid: int) -> bool:
    """Running and not a zombie (a reaped-late zombie holds no port and runs no code)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


@pytest.fixture
async def devcluster(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Run]:
    """A test may add settings: ``parametrize("devcluster", [{...}], indirect=True)``."""
    base = free_base_port()
    stderr_path = tmp_path / "devcluster.stderr"
    env = {**os.environ, "SB_JWT_SECRET": SECRET, "SB_API_KEY": "devcluster-test-api-key",
           "SB_ENV": "development", **getattr(request, "param", {})}
    with stderr_path.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "devcluster", "--gateways", str(GATEWAYS),
            "--base-port", str(base), cwd=tmp_path, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=stderr,
        )
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


async def read_ready(run: Run) -> dict[str, object]:
    assert run.proc.stdout is not None
    try:
        line = await asyncio.wait_for(run.proc.stdout.readline(), 60 * UNIT)
    except TimeoutError:
        pytest.fail(f"no READY line within {60 * UNIT:g}s; stderr:\n{run.stderr()}")
    text = line.decode()
    assert text.startswith("READY "), f"stdout: {text!r}; stderr:\n{run.stderr()}"
    announcement: dict[str, object] = json.loads(text.removeprefix("READY "))
    return announcement


async def test_devcluster_starts_serves_and_stops_everything(devcluster: Run) -> None:
    ready = await read_ready(devcluster)
    assert set(ready) == {"lb", "gateways", "nats", "router", "presence", "demo"}
    gateways = ready["gateways"]
    assert isinstance(gateways, list) and len(gateways) == GATEWAYS
    assert all(isinstance(url, str) for url in gateways)
    assert str(ready["nats"]).startswith("nats://127.0.0.1:")
    http_urls = [*gateways, ready["router"], ready["presence"], ready["demo"], ready["lb"]]
    assert all(str(url).startswith("http://127.0.0.1:") for url in http_urls)

    await check_urls(http_urls, str(ready["demo"]))

    pids = devcluster.child_pids()
    assert set(pids) == {"nats", "router", "presence", *(f"gw-{i}" for i in (1, 2))}
    devcluster.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(devcluster.proc.wait(), 60 * UNIT) == 0, devcluster.stderr()
    assert devcluster.proc.stdout is not None
    assert await devcluster.proc.stdout.read() == b"", "READY must be the only stdout line"
    assert [name for name, pid in pids.items() if alive(pid)] == []


async def check_urls(http_urls: list[object], demo: str) -> None:
    timeout = aiohttp.ClientTimeout(total=10 * UNIT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for url in http_urls:
            async with session.get(f"{url}/healthz") as response:
                assert response.status == 200, url
        async with session.get(f"{demo}/") as response:
            assert response.status == 200
            assert "Switchboard" in await response.text()
        async with session.get(f"{demo}/socket.io.min.js") as response:
            assert response.status == 200, "run `npm ci --prefix web`"
            assert "Socket.IO v4.8.4" in await response.text()
        async with session.get(f"{demo}/config.json") as response:
            config = await response.json()
            assert config["gateways"] == http_urls[:GATEWAYS]
            assert config["lb"] == http_urls[-1]
        async with session.post(f"{demo}/dev-token", json={"name": "alice"}) as response:
            assert response.status == 200
            token = (await response.json())["token"]
    assert jwt.decode(token, SECRET, algorithms=["HS256"])["sub"] == "alice"
