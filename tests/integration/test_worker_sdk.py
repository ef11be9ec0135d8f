"""The Python worker SDK behind real gateways: two gateway processes on one namespaces file,
two SDK workers in this process sharing the queue group, python-socketio as the client."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest
import socketio

from client.client import SwitchboardClient
from client.worker import HookError, MemoryReplyStore, Refuse, Worker, kv_replies
from devcluster.natsserver import NatsServer
from tests.support import processes
from tests.support.jsclient import JsClients
from tests.support.processes import Service
from tests.support.timing import UNIT
from tests.support.tokens import SECRET, make_token

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


def app(prefix: str, name: str, runs: list[tuple[str, str]],
        held: asyncio.Event | None = None, ran: asyncio.Event | None = None,
        dedup: Any = None) -> Worker:
    """The test application; an order with ``hold`` waits for ``held`` (``ran`` is set when
    a handler starts)."""
    worker = Worker("/orders", prefix=prefix, dedup=dedup or MemoryReplyStore())

    @worker.connect
    async def connect(req: Any) -> Any:
        if req.user is not None:  # a verified token names the user (the SDK client)
            return worker.accept(data={"tier": "token"})
        if req.auth.get("api_key") != "k":
            raise Refuse("bad api key", data={"hint": "pass auth: {api_key}"})
        return worker.accept(user=req.auth["name"], data={"tier": "gold"})

    @worker.event("order:place")
    async def place(ev: Any, order: dict[str, Any]) -> Any:
        if order.get("qty", 0) <= 0:
            raise HookError("bad_request", "qty must be positive", data={"field": "qty"})
        runs.append((name, ev.id))
        if ran is not None:
            ran.set()
        if order.get("hold") and held is not None:
            await held.wait()
        return {"ok": True, "by": ev.user, "tier": ev.data["tier"], "qty": order["qty"]}

    return worker


@pytest.fixture
async def held() -> asyncio.Event:
    """Holds the workers' orders marked ``hold`` until a test sets it."""
    return asyncio.Event()


@pytest.fixture
async def workers(cluster: tuple[list[Service], str], nats_server: NatsServer,
                  held: asyncio.Event,
                  ) -> AsyncIterator[list[tuple[str, str]]]:
    runs: list[tuple[str, str]] = []
    started = []
    for name in ("w1", "w2"):
        nc = await nats.connect(nats_server.url)
        worker = app(cluster[1], name, runs, held)
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


async def test_socket_io_client_acks_and_binary_round_trip(
        cluster: tuple[list[Service], str], workers: list[tuple[str, str]],
        js: JsClients) -> None:
    admitted = await js.connect("c", cluster[0][1].url, "/orders",
                                auth={"api_key": "k", "name": "cy"})
    assert admitted["type"] == "connect"
    ack = await js.call("c", "order:place", {"id": "js-1", "qty": 5})
    assert ack == {"ok": True, "by": "cy", "tier": "gold", "qty": 5}
    assert await js.call("c", "nope", 1) == {
        "ok": False, "error": {"code": "unknown_event", "message": "no handler for 'nope'"}}


async def test_an_sdk_client_retry_arrives_with_the_same_id_and_runs_once(
        cluster: tuple[list[Service], str], nats_server: NatsServer,
        workers: list[tuple[str, str]], held: asyncio.Event) -> None:
    gateways, prefix = cluster
    spy_nc = await nats.connect(nats_server.url)
    seen: list[str] = []
    retried = asyncio.Event()

    async def spy(msg: Any) -> None:  # no queue group: a copy of every request
        seen.append(orjson.loads(msg.data)["id"])
        if len(seen) == 2:
            retried.set()

    await spy_nc.subscribe(f"{prefix}.hook.orders.event.*", cb=spy)
    await spy_nc.flush()
    sdk = SwitchboardClient(gateways[0].url, make_token("dee"), namespaces=("/orders",),
                            ack_timeout=0.2 * UNIT, retries=20)
    try:
        await sdk.connect()
        call = asyncio.create_task(sdk.emit_with_ack("order:place",
                                                     {"id": "r-1", "qty": 1, "hold": True}))
        while sdk.counters.ack_retries < 1 and not call.done():  # noqa: ASYNC110 - a counter
            await asyncio.sleep(0.01)
        held.set()  # the first attempt answers; the gateway then sends the queued retry
        assert await asyncio.wait_for(call, 10 * UNIT) == {
            "ok": True, "by": "dee", "tier": "token", "qty": 1}
        await asyncio.wait_for(retried.wait(), 10 * UNIT)
    finally:
        held.set()
        await sdk.close()
        await spy_nc.close()
    assert seen[:2] == ["dee:r-1", "dee:r-1"]
    runs = [name for name, request_id in workers if request_id == "dee:r-1"]
    # In-memory de-duplication is per replica (docs/hooks.md): the queue group may hand the
    # retry to the other worker, which then runs it once too; never twice on one replica.
    assert 1 <= len(runs) <= 2 and len(set(runs)) == len(runs)


# --- without a gateway: a raw nats-py requester sends what the gateway sends -------------


@pytest.fixture
async def raw(nats_server: NatsServer) -> AsyncIterator[tuple[Any, str, list[Worker]]]:
    prefix = f"raw{uuid.uuid4().hex[:8]}"
    nc = await nats.connect(nats_server.url)
    started: list[Worker] = []
    try:
        for name in ("w1", "w2"):
            worker = app(prefix, name, [])
            await worker.start(nc)
            started.append(worker)
        yield nc, prefix, started
    finally:
        for worker in started:
            await worker.stop()
        await nc.close()


async def request(nc: Any, subject: str, body: dict[str, Any]) -> Any:
    reply = await nc.request(subject, orjson.dumps(body), timeout=5 * UNIT)
    return orjson.loads(reply.data)


def event(event: str, *args: Any, id: str = "ann:k-1") -> dict[str, Any]:
    return {"nsp": "/orders", "event": event, "args": list(args), "ack": True, "sid": "s1",
            "id": id, "user": "ann", "data": {"tier": "gold"}, "gateway": "gw-1"}


async def test_a_raw_requester_gets_the_contracts_replies(
        raw: tuple[Any, str, list[Worker]]) -> None:
    nc, prefix, _ = raw
    base = f"{prefix}.hook.orders"
    assert await request(nc, f"{base}.connect", {
        "nsp": "/orders", "sid": "s1", "id": "c1", "user": None, "claims": None,
        "auth": {"api_key": "k", "name": "ann"}, "headers": {}, "gateway": "gw-1"}) == {
        "ok": True, "user": "ann", "data": {"tier": "gold"}}
    assert await request(nc, f"{base}.connect", {"nsp": "/orders", "auth": {}}) == {
        "ok": False, "error": {"message": "bad api key",
                               "data": {"hint": "pass auth: {api_key}"}}}
    placed = await request(nc, f"{base}.event.order=3Aplace",
                           event("order:place", {"id": "k-1", "qty": 2, "b": {"$bin": "AA=="}}))
    assert placed == {"ok": True, "ack": [{"ok": True, "by": "ann", "tier": "gold", "qty": 2}]}
    unknown = await request(nc, f"{base}.event.nope", event("nope"))
    assert unknown["error"]["code"] == "unknown_event"
    bad = await nc.request(f"{base}.event.order=3Aplace", b"{", timeout=5 * UNIT)
    assert orjson.loads(bad.data)["error"]["code"] == "bad_request"


async def test_a_shared_kv_store_answers_a_retry_on_either_replica(
        nats_server: NatsServer) -> None:
    prefix = f"kv{uuid.uuid4().hex[:8]}"
    nc = await nats.connect(nats_server.url)
    runs: list[tuple[str, str]] = []
    workers = []
    try:
        for name in ("w1", "w2"):
            worker = app(prefix, name, runs, dedup=kv_replies(bucket=f"{prefix}-replies"))
            await worker.start(nc)
            workers.append(worker)
        subject = f"{prefix}.hook.orders.event.order=3Aplace"
        answers = [await request(nc, subject, event("order:place", {"id": "k", "qty": 1},
                                                    id="ann:k")) for _ in range(8)]
    finally:
        for worker in workers:
            await worker.stop()
        await nc.close()
    assert runs == [(runs[0][0], "ann:k")]
    assert all(answer == answers[0] for answer in answers)


async def test_stop_drains_and_finishes_what_is_in_flight(nats_server: NatsServer) -> None:
    prefix = f"stop{uuid.uuid4().hex[:8]}"
    nc = await nats.connect(nats_server.url)
    held, ran = asyncio.Event(), asyncio.Event()
    worker = app(prefix, "w", [], held, ran)
    await worker.start(nc)
    try:
        pending = asyncio.create_task(request(
            nc, f"{prefix}.hook.orders.event.order=3Aplace",
            event("order:place", {"id": "h", "qty": 1, "hold": True}, id="ann:h")))
        await asyncio.wait_for(ran.wait(), 10 * UNIT)
        stopping = asyncio.create_task(worker.stop())
        await asyncio.sleep(0)
        assert not stopping.done()
        held.set()
        await asyncio.wait_for(stopping, 10 * UNIT)
        assert (await pending)["ok"] is True
    finally:
        held.set()
        await nc.close()
