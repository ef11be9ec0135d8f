"""Namespaces declared in SB_NAMESPACES_FILE, end to end: real nats-server, a gateway, a router
and a presence replica started with one file (named by a relative path) declaring ``/orders``
(durable, presence) and ``/feed`` (ephemeral); python-socketio clients join, send and read
history there, the router publishes into the declared room log, presence answers for
``/orders``; and every service started with a bad file exits with status 2 and one line naming
the file, the namespace and the key."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from devcluster.natsserver import NatsServer, free_ports
from tests.support import processes
from tests.support.processes import ROOT, Service
from tests.support.timing import UNIT
from tests.support.tokens import SECRET, make_token

pytestmark = pytest.mark.integration

API_KEY = "namespaces-file-test-api-key-0123456789"
NAMESPACES_TOML = """\
[namespaces."/orders"]
durable = true
presence = true
event_rate = 50

[namespaces."/feed"]
"""
DECLARED = ["/orders", "/feed"]


@dataclass
class Stack:
    gateway: Service
    router: Service
    prefix: str


@pytest.fixture(scope="module")
def stack(nats_server: NatsServer, service_logs: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Gateway, router and presence on a prefix of their own, all given the file by a path
    relative to their working directory; stopped by PID whatever happens."""
    path = tmp_path_factory.mktemp("namespaces") / "namespaces.toml"
    path.write_text(NAMESPACES_TOML)
    prefix = f"ns{uuid.uuid4().hex[:8]}"
    shared = {"SB_NAMESPACES_FILE": os.path.relpath(path, ROOT), "SB_SUBJECT_PREFIX": prefix}
    (router_port,) = free_ports(1)
    services = [
        processes.gateway(nats_server.url, SECRET, **shared),
        Service("router", {"SB_NATS_URL": nats_server.url, "SB_API_KEY": API_KEY,
                           "SB_INSTANCE_ID": f"rt-{router_port}", **shared}, router_port),
        processes.presence(nats_server.url, **shared),
    ]
    try:
        for service in services:
            service.start(service_logs)
        yield Stack(services[0], services[1], prefix)
    finally:
        for service in services:
            service.stop()


class Inbox:
    """One client's ``message:received`` events per namespace (the payload object only)."""

    def __init__(self, client: socketio.AsyncClient) -> None:
        self.queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        for nsp in DECLARED:
            self.queues[nsp] = asyncio.Queue()
            client.on("message:received", self.queues[nsp].put_nowait, namespace=nsp)

    async def next(self, nsp: str) -> dict[str, Any]:
        return await asyncio.wait_for(self.queues[nsp].get(), 5 * UNIT)



@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Any]]:
    clients: list[socketio.AsyncClient] = []

    async def make(url: str, sub: str) -> tuple[socketio.AsyncClient, Inbox]:
        client = socketio.AsyncClient(reconnection=False)
        inbox = Inbox(client)
        clients.append(client)
        await client.connect(url, transports=["websocket"], namespaces=DECLARED,
                             auth={"token": make_token(sub), "recovery": False}, wait_timeout=5)
        return client, inbox

    try:
        yield make
    finally:
        for client in clients:
            await client.disconnect()


async def call(client: socketio.AsyncClient, nsp: str, event: str, data: object) -> Any:
    return await client.call(event, data, namespace=nsp, timeout=5 * UNIT)


async def test_declared_namespaces_serve_their_built_in_events(
        stack: Stack, connect: Callable[..., Any]) -> None:
    alice, _ = await connect(stack.gateway.url, "alice")
    bob, bob_inbox = await connect(stack.gateway.url, "bob")
    assert bob.connection_namespaces == DECLARED
    for client in (alice, bob):
        for nsp in DECLARED:
            assert await call(client, nsp, "room:join", {"room": "room:o"}) == {
                "ok": True, "room": "room:o"}

    first = await call(alice, "/orders", "message:send", {"room": "room:o", "text": "one",
                                                          "id": "o1"})
    second = await call(alice, "/orders", "message:send", {"room": "room:o", "text": "two",
                                                           "id": "o2"})
    assert first["ok"] and second["ok"] and second["seq"] > first["seq"]
    got = [await bob_inbox.next("/orders"), await bob_inbox.next("/orders")]
    assert [(m["text"], m["seq"], m["prev"]) for m in got] == [
        ("one", first["seq"], 0), ("two", second["seq"], first["seq"])]

    history = await call(bob, "/orders", "room:history", {"room": "room:o"})
    assert history["ok"] and [m["text"] for m in history["messages"]] == ["one", "two"]

    sent = await call(alice, "/feed", "message:send", {"room": "room:o", "text": "live",
                                                       "id": "f1"})
    assert sent["ok"] is True
    live = await bob_inbox.next("/feed")
    assert (live["text"], live["from"]) == ("live", "alice")
    for event, data in (("room:history", {"room": "room:o"}), ("typing:start", {"room": "room:o"}),
                        ("room:presence", {"room": "room:o"})):
        answer = await call(bob, "/feed", event, data)
        assert answer["error"]["code"] == "unknown_event", event
    assert (await call(bob, "/orders", "typing:start", {"room": "room:o"}))["ok"] is True


async def test_presence_answers_for_a_declared_namespace(
        stack: Stack, connect: Callable[..., Any]) -> None:
    carol, _ = await connect(stack.gateway.url, "carol")
    await call(carol, "/orders", "room:join", {"room": "room:p"})
    async with asyncio.timeout(10 * UNIT):  # the join reaches presence through NATS
        while True:
            answer = await call(carol, "/orders", "room:presence", {"room": "room:p"})
            if answer.get("ok") and answer["users"] == ["carol"]:
                break
            await asyncio.sleep(0.2)


async def test_an_undeclared_namespace_is_still_invalid(stack: Stack) -> None:
    client = socketio.AsyncClient(reconnection=False)
    refusals: list[Any] = []
    client.on("connect_error", refusals.append, namespace="/orderz")
    try:
        with pytest.raises(socketio.exceptions.ConnectionError, match="/orderz"):
            await client.connect(stack.gateway.url, transports=["websocket"],
                                 namespaces=["/orderz"], auth={"token": make_token("dan")},
                                 wait_timeout=5)
    finally:
        await client.disconnect()
    assert refusals == [{"message": "Invalid namespace"}]


async def test_the_router_publishes_into_a_declared_room_log(
        stack: Stack, connect: Callable[..., Any]) -> None:
    erin, inbox = await connect(stack.gateway.url, "erin")
    await call(erin, "/orders", "room:join", {"room": "room:api"})
    body = {"namespace": "/orders", "room": "room:api", "event": "message:received",
            "data": {"text": "from the backend"}, "id": "api-1"}
    headers = {"Authorization": f"Bearer {API_KEY}"}
    timeout = aiohttp.ClientTimeout(total=10 * UNIT)
    async with (aiohttp.ClientSession(timeout=timeout) as http,
                http.post(f"{stack.router.url}/api/v1/publish", json=body,
                          headers=headers) as response):
        answer = await response.json()
    assert response.status == 200 and answer["ok"] is True and answer["seq"] > 0
    message = await inbox.next("/orders")
    assert (message["text"], message["seq"], message["prev"]) == ("from the backend",
                                                                  answer["seq"], 0)


BAD_FILES = [
    ('[namespaces."/orders"]\ndurable = "yes"\n', "namespace '/orders', key 'durable'"),
    ('[namespaces."/chat"]\npresence = false\n', "namespace '/chat', key 'presence'"),
    ('[namespaces."/orders"]\ncolour = 1\n', "namespace '/orders', key 'colour'"),
    ('[namespaces."/root"]\n', "namespace '/root'"),
    ("[namespaces\n", "not valid TOML"),
]


@pytest.mark.parametrize("module", ["gateway", "router", "presence"])
@pytest.mark.parametrize(("text", "named"), BAD_FILES)
def test_a_bad_file_stops_the_service_with_status_2_naming_the_key(
        module: str, text: str, named: str, tmp_path: Path, nats_server: NatsServer) -> None:
    path = tmp_path / "bad-namespaces.toml"
    path.write_text(text)
    (port,) = free_ports(1)
    env = {**os.environ, "SB_NATS_URL": nats_server.url, "SB_JWT_SECRET": SECRET,
           "SB_API_KEY": API_KEY, "SB_PORT": str(port), "SB_NAMESPACES_FILE": str(path)}
    done = subprocess.run([sys.executable, "-m", module], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=30 * UNIT, check=False)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"{module}: configuration error: SB_NAMESPACES_FILE=")
    assert str(path) in lines[0] and named in lines[0]
