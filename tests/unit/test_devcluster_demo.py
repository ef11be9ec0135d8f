"""The demo page's server, driven in-process: files, gateway list and development tokens."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from devcluster.demo import DemoConfig, make_app, missing_packages

SECRET = "demo-test-secret-of-at-least-32-bytes!"
GATEWAYS = ("http://127.0.0.1:8001", "http://127.0.0.1:8002")

Client = TestClient[web.Request, web.Application]


def web_dir(tmp_path: Path, *, with_socket_io: bool) -> Path:
    for name in ("index.html", "app.js", "events.js"):
        (tmp_path / name).write_text(f"<!-- {name} -->")
    if with_socket_io:
        build = tmp_path / "node_modules/socket.io-client/dist/socket.io.min.js"
        build.parent.mkdir(parents=True)
        build.write_text("/* socket.io */")
    return tmp_path


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    config = DemoConfig(GATEWAYS, SECRET, development=True,
                        web_dir=web_dir(tmp_path, with_socket_io=True))
    async with TestClient(TestServer(make_app(config))) as test_client:
        yield test_client


async def test_serves_the_page_and_its_modules_with_a_strict_policy(
    client: Client,
) -> None:
    for path, kind in [("/", "text/html"), ("/app.js", "text/javascript"),
                       ("/events.js", "text/javascript"),
                       ("/socket.io.min.js", "text/javascript")]:
        response = await client.get(path)
        assert response.status == 200, path
        assert response.content_type == kind
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy
        assert "ws://127.0.0.1:8002" in policy


async def test_only_named_files_are_served(client: Client) -> None:
    for path in ["/node_modules/socket.io-client/package.json", "/../pyproject.toml", "/x.js"]:
        assert (await client.get(path)).status == 404, path


async def test_config_lists_the_gateways(client: Client) -> None:
    response = await client.get("/config.json")
    assert await response.json() == {"gateways": list(GATEWAYS), "lb": None}


async def test_dev_token_is_an_hs256_token_for_the_name(
    client: Client,
) -> None:
    response = await client.post("/dev-token", json={"name": "alice"})
    assert response.status == 200
    claims = jwt.decode((await response.json())["token"], SECRET, algorithms=["HS256"])
    assert claims["sub"] == claims["name"] == "alice"
    assert claims["exp"] - claims["iat"] == 3600
    assert abs(claims["iat"] - time.time()) < 60


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"name": ""}', b'{"name": "   "}',
                                  b'{"name": 5}', b'{"name": "' + b"x" * 129 + b'"}'])
async def test_dev_token_rejects_bad_names(
    client: Client, body: bytes
) -> None:
    response = await client.post("/dev-token", data=body)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "bad_request"


async def test_no_dev_tokens_outside_development(tmp_path: Path) -> None:
    config = DemoConfig(GATEWAYS, SECRET, development=False,
                        web_dir=web_dir(tmp_path, with_socket_io=True))
    async with TestClient(TestServer(make_app(config))) as test_client:
        assert (await test_client.post("/dev-token", json={"name": "a"})).status == 404


async def test_missing_socket_io_build_says_how_to_install_it(tmp_path: Path) -> None:
    config = DemoConfig(GATEWAYS, SECRET, development=True,
                        web_dir=web_dir(tmp_path, with_socket_io=False))
    async with TestClient(TestServer(make_app(config))) as test_client:
        response = await test_client.get("/socket.io.min.js")
        assert response.status == 500
        assert "npm ci --prefix web" in await response.text()


def test_a_page_without_its_npm_packages_is_warned_about(tmp_path: Path) -> None:
    warning = missing_packages(tmp_path)
    assert warning is not None and "npm ci --prefix web" in warning
    build = tmp_path / "node_modules/socket.io-client/dist/socket.io.min.js"
    build.parent.mkdir(parents=True)
    build.write_text("//")
    assert missing_packages(tmp_path) is None
