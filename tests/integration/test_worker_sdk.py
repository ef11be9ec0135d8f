"""The Python worker SDK behind real gateways: two gateway processes on one namespaces file,
two SDK workers in this process sharing the queue group, python-socketio as the client."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import socketio

from client.worker import HookError, MemoryReplyStore, Refuse, Worker
from devcluster.natsserver import NatsServer
from tests.support import processes
from tests.support.jsclient import JsClients
from tests.support.processes import Service
from tests.support.timing import UNIT
from tests.support.tokens import SECRET

pytestmark = pytest.mark.integration

NAMESPACES = """
[namespaces."/orders"]
auth = "hook"
hooks = true
hook_timeout_ms = 2000
"""


@pytest.fixture(scope="module")
def cluster(nats_server: NatsServer, service_logs: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[Service], str]]:
    path = tmp_path_factory.mktemp("sdk") / "namespaces.toml"
    path.write_text(NAMESPACES)
    prefix = f"sdk{uuid.uuid4().hex[:8]}"
    started: list[Service] = []
    try:
        for _ in range(2):
            started.append(processes.gateway(nats_server.url, SECRET, SB_NAMESPACES_FILE=str(path),
                                             SB_SUBJECT_PREFIX=prefix).start(service_logs))
        yield started, prefix
    finally:
        for service in started:
            service.stop()


def app(prefix: str, name: str, runs: list[tuple[str, str]]) -> Worker:
    worker = Worker("/orders", prefix=prefix, dedup=MemoryReplyStore())

    @worker.connect
    async def connect(req: Any) -> Any:
        if req.auth.get("api_key") != "k":
            raise Refuse("bad api key", data={"hint": "pass auth: {api_key}"})
        return worker.accept(user=req.auth["name"], data={"tier": "gold"})

    @worker.event("order:place")
    async def place(ev: Any, order: dict[str, Any]) -> Any:
        if order.get("qty", 0) <= 0:
            raise HookError("bad_request", "qty must be positive", data={"field": "qty"})
        runs.append((name, ev.id))
        return {"ok": True, "by": ev.user, "tier": ev.data["tier"], "qty": order["qty"]}

    return worker


@pytest.fixture
async def workers(cluster: tuple[list[Service], str], nats_server: NatsServer
                  ) -> AsyncIterator[list[tuple[str, str]]]:
    runs: list[tuple[str, str]] = []
    started = []
    for name in ("w1", "w2"):
        nc = await nats.connect(nats_server.url)
        worker = app(cluster[1], name, runs)
        await worker.start(nc)
        started.append((worker, nc))
    try:
        yield runs
    finally:
        for worker, nc in started:
            await worker.stop()
            await nc.close()


async def client(url: str, **auth: str) -> socketio.AsyncClient:
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(url, namespaces=["/orders"], auth=auth, wait_timeout=5 * UNIT)
    return sio


async def test_connect_refused_with_the_applications_message_and_data(
        cluster: tuple[list[Service], str], workers: list[tuple[str, str]],
        js: JsClients) -> None:
    refused = await js.connect("r", cluster[0][0].url, "/orders", auth={"api_key": "no"},
                               transports=["polling", "websocket"])
    assert refused == {"type": "connect_error", "id": "r", "message": "bad api key",
                       "data": {"hint": "pass auth: {api_key}"}}
    admitted = await js.connect("a", cluster[0][0].url, "/orders",
                                auth={"api_key": "k", "name": "bo"})
    assert admitted["type"] == "connect"


async def test_acks_errors_retries_and_the_load_over_two_workers(
        cluster: tuple[list[Service], str], workers: list[tuple[str, str]]) -> None:
    gateways, _ = cluster
    sio = await client(gateways[1].url, api_key="k", name="ann")
    try:
        ack = await sio.call("order:place", {"id": "o-1", "qty": 2}, namespace="/orders",
                             timeout=5 * UNIT)
        assert ack == {"ok": True, "by": "ann", "tier": "gold", "qty": 2}
        again = await sio.call("order:place", {"id": "o-1", "qty": 2}, namespace="/orders",
                               timeout=5 * UNIT)
        assert again == ack
        bad = await sio.call("order:place", {"id": "o-2", "qty": 0}, namespace="/orders",
                             timeout=5 * UNIT)
        assert bad == {"ok": False, "error": {"code": "bad_request",
                                              "message": "qty must be positive",
                                              "data": {"field": "qty"}}}
        for n in range(40):
            await sio.call("order:place", {"id": f"m-{n}", "qty": 1}, namespace="/orders",
                           timeout=5 * UNIT)
    finally:
        await sio.disconnect()
    ids = [request_id for _, request_id in workers]
    assert ids.count("ann:o-1") in (1, 2)  # once per replica at most: its own memory
    assert {name for name, _ in workers} == {"w1", "w2"}
