"""The demo server's development tools for the page: every module served, and "kill my
gateway" (``/dev/gateways``, ``POST /dev/kill-gateway``) SIGKILLing a real process."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from devcluster.demo import _MODULES, DemoConfig, make_app
from tests.unit.test_devcluster_demo import GATEWAYS, SECRET

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def victim() -> AsyncIterator[asyncio.subprocess.Process]:
    """A process standing in for a gateway."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(60)")
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def _client(tmp_path: Path, pids: Mapping[str, int] | None, *, development: bool = True) -> Client:
    for name in ("index.html", *_MODULES):
        (tmp_path / name).write_text(f"// {name}")
    config = DemoConfig(GATEWAYS, SECRET, development=development, web_dir=tmp_path,
                        gateway_pids=None if pids is None else lambda: pids)
    return TestClient(TestServer(make_app(config)))


async def test_every_page_module_is_served_as_javascript(tmp_path: Path) -> None:
    async with _client(tmp_path, None) as client:
        for name in _MODULES:
            response = await client.get(f"/{name}")
            assert response.status == 200, name
            assert response.content_type == "text/javascript"
            assert await response.text() == f"// {name}"


async def test_the_page_learns_the_pids_and_kills_its_gateway(
    tmp_path: Path, victim: asyncio.subprocess.Process
) -> None:
    async with _client(tmp_path, {"gw-1": victim.pid}) as client:
        listed = await (await client.get("/dev/gateways")).json()
        assert listed == {"gateways": [{"id": "gw-1", "pid": victim.pid}]}
        response = await client.post("/dev/kill-gateway", json={"gateway": "gw-1"})
        assert response.status == 200
        assert await response.json() == {"gateway": "gw-1", "pid": victim.pid}
        assert await asyncio.wait_for(victim.wait(), 10) == -signal.SIGKILL


async def test_kill_refuses_what_it_cannot_or_must_not_do(
    tmp_path: Path, victim: asyncio.subprocess.Process
) -> None:
    async with _client(tmp_path, {"gw-1": victim.pid}) as client:
        text_plain = await client.post("/dev/kill-gateway", data='{"gateway": "gw-1"}',
                                       headers={"Content-Type": "text/plain"})
        assert text_plain.status == 400, "a cross-site form must not kill anything"
        for body in ([], {"gateway": 1}, {}):
            assert (await client.post("/dev/kill-gateway", json=body)).status == 400, body
        unknown = await client.post("/dev/kill-gateway", json={"gateway": "gw-9"})
        assert unknown.status == 404
        assert "gw-9" in (await unknown.json())["error"]["message"]
    assert victim.returncode is None


async def test_without_a_process_list_there_is_nothing_to_kill(tmp_path: Path) -> None:
    async with _client(tmp_path, None) as client:
        assert await (await client.get("/dev/gateways")).json() == {"gateways": []}
        response = await client.post("/dev/kill-gateway", json={"gateway": "gw-1"})
        assert response.status == 404


async def test_no_dev_tools_outside_development(
    tmp_path: Path, victim: asyncio.subprocess.Process
) -> None:
    async with _client(tmp_path, {"gw-1": victim.pid}, development=False) as client:
        assert (await client.get("/dev/gateways")).status == 404
        assert (await client.post("/dev/kill-gateway", json={"gateway": "gw-1"})).status == 404
    assert victim.returncode is None
