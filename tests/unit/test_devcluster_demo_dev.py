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


API_KEY = "demo-test-api-key"
ASKED: list[str] = []


async def _router(request: web.Request) -> web.Response:
    """The router's ``GET /api/v1/users/{user}/connections``, as far as /dev/where reads it."""
    if request.headers.get("Authorization") != f"Bearer {API_KEY}":
        return web.json_response({"ok": False}, status=401)
    ASKED.append(request.match_info["user"])
    return web.json_response({"ok": True, "connections": [
        {"id": f"{'A' * 22}~gw-1", "gateway": "gw-2", "namespaces": ["/chat"]},
        "not a connection",
    ]})


@pytest.fixture
async def router() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/api/v1/users/{user}/connections", _router)
    async with TestServer(app) as server:
        yield str(server.make_url("")).rstrip("/")


async def test_where_asks_the_registry_for_the_holder_not_the_sid(
    tmp_path: Path, router: str
) -> None:
    config = DemoConfig(GATEWAYS, SECRET, development=True, web_dir=tmp_path,
                        router=router, api_key=API_KEY)
    async with TestClient(TestServer(make_app(config))) as client:
        sid = f"{'A' * 22}~gw-1"
        taken_over = await client.get("/dev/where", params={"user": "a/b c", "sid": sid})
        assert await taken_over.json() == {"gateway": "gw-2", "registry": True}
        assert ASKED[-1] == "a/b c", "the name is one path segment, whatever it holds"
        gone = await client.get("/dev/where", params={"user": "ann", "sid": "other"})
        assert await gone.json() == {"gateway": None, "registry": True}
        assert (await client.get("/dev/where", params={"user": "ann"})).status == 400


async def test_where_without_a_router_or_with_a_wrong_key_knows_nothing(
    tmp_path: Path, router: str
) -> None:
    sid = f"{'A' * 22}~gw-1"
    for config in (DemoConfig(GATEWAYS, SECRET, development=True, web_dir=tmp_path),
                   DemoConfig(GATEWAYS, SECRET, development=True, web_dir=tmp_path,
                              router=router, api_key="wrong")):
        async with TestClient(TestServer(make_app(config))) as client:
            answer = await (await client.get("/dev/where", params={"user": "a", "sid": sid})).json()
            assert answer["gateway"] is None
    closed = DemoConfig(GATEWAYS, SECRET, development=True, web_dir=tmp_path,
                        router="http://127.0.0.1:9", api_key=API_KEY)
    async with TestClient(TestServer(make_app(closed))) as client:
        answer = await (await client.get("/dev/where", params={"user": "a", "sid": sid})).json()
        assert answer == {"gateway": None, "registry": True}
    production = DemoConfig(GATEWAYS, SECRET, development=False, web_dir=tmp_path,
                            router=router, api_key=API_KEY)
    async with TestClient(TestServer(make_app(production))) as client:
        assert (await client.get("/dev/where", params={"user": "a", "sid": sid})).status == 404
