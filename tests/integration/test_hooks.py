"""Application hooks end to end: a real nats-server, two gateway processes given one
namespaces file, workers written against the wire contract only (raw nats-py, a queue group;
in this process, or in processes of their own to SIGKILL), and the real clients
(socket.io-client on node, python-socketio)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest
import socketio
from nats.aio.msg import Msg
from prometheus_client import CollectorRegistry

from devcluster.natsserver import NatsServer
from gateway.actions import HookCall, HookFailure
from gateway.hook_client import HookClient
from shared.light_client import LightClient
from shared.metrics import GatewayMetrics
from shared.subjects import Subjects
from tests.support import processes
from tests.support.jsclient import JsClients
from tests.support.processes import ROOT, Service
from tests.support.timing import UNIT
from tests.support.tokens import SECRET, make_token

pytestmark = pytest.mark.integration

TIMEOUT_MS = 800
NAMESPACES_TOML = f"""
[namespaces."/shop"]
auth = "hook"
hooks = true
hook_timeout_ms = {TIMEOUT_MS}
hook_headers = ["x-app-version"]

[namespaces."/log"]
durable = true
hooks = true

[namespaces."/tight"]
hooks = true
event_rate = 0.01
event_burst = 2

[namespaces."/lonely"]
hooks = true
hook_timeout_ms = 60000

[namespaces."/gated"]
auth = "hook"
hook_timeout_ms = 500

[namespaces."/jobs"]
hooks = true
hook_timeout_ms = {TIMEOUT_MS}
"""


@dataclass
class Cluster:
    gateways: list[Service]
    prefix: str
    env: dict[str, str]


@pytest.fixture(scope="module")
def cluster(nats_server: NatsServer, service_logs: Path,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    path = tmp_path_factory.mktemp("hooks") / "namespaces.toml"
    path.write_text(NAMESPACES_TOML)
    prefix = f"hk{uuid.uuid4().hex[:8]}"
    env = {"SB_NAMESPACES_FILE": str(path), "SB_SUBJECT_PREFIX": prefix}
    started: list[Service] = []
    try:
        for _ in range(2):
            started.append(processes.gateway(nats_server.url, SECRET, **env).start(service_logs))
        yield Cluster(started, prefix, env)
    finally:
        for service in started:
            service.stop()


@dataclass
class Worker:
    """An application worker in this process, against the contract only: answers the
    connect hooks of every namespace but /gated, and the events of /shop, /log, /tight
    (/lonely's and /jobs' events have no worker here)."""

    prefix: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    held: list[Msg] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_connect(self, msg: Msg) -> None:
        request = orjson.loads(msg.data)
        auth = request["auth"]
        if request["user"] is not None:  # a token verified: nothing to decide
            reply: dict[str, Any] = {"ok": True}
        elif auth.get("key") != "good":
            reply = {"ok": False, "error": {"message": "bad key", "data": {"reason": "nope"}}}
        else:
            welcome = {"user": auth["user"]}
            if request["headers"]:
                welcome["headers"] = request["headers"]
            reply = {"ok": True, "user": auth["user"], "data": {"plan": "pro"},
                     "emit": [["welcome", welcome]]}
        await msg.respond(orjson.dumps(reply))

    async def on_event(self, msg: Msg) -> None:
        request = orjson.loads(msg.data)
        self.seen.append(request)
        self.arrived.set()
        reply = self.answer(request)
        if reply is None:
            self.held.append(msg)
        else:
            await msg.respond(orjson.dumps(reply))

    def answer(self, request: dict[str, Any]) -> dict[str, Any] | None:
        event, args = request["event"], request["args"]
        if event == "slow":
            return None
        if event == "fail":
            return {"ok": False, "error": {"code": "out_of_stock", "message": "none left",
                                           "data": {"left": 0}}}
        if event == "bin":
            blob = base64.b64decode(args[0]["$bin"])[::-1]
            return {"ok": True, "ack": [{"$bin": base64.b64encode(blob).decode()}]}
        if event == "pub":
            room = args[0]["room"]
            return {"ok": True, "ack": [{"ok": True}], "join": [room],
                    "publish": [{"room": room, "event": "placed", "data": {"n": args[0]["n"]}}]}
        return {"ok": True, "ack": [{"got": args, "id": request["id"], "data": request["data"],
                                     "user": request["user"]}]}


@pytest.fixture
async def worker(cluster: Cluster, nats_server: NatsServer) -> AsyncIterator[Worker]:
    nc = await nats.connect(nats_server.url)
    app = Worker(cluster.prefix)
    p = cluster.prefix
    try:
        for ns in ("shop", "log", "tight", "lonely", "jobs"):
            await nc.subscribe(f"{p}.hook.{ns}.connect", queue="app", cb=app.on_connect)
        for ns in ("shop", "log", "tight"):
            await nc.subscribe(f"{p}.hook.{ns}.event.*", queue="app", cb=app.on_event)
        await nc.flush()
        yield app
    finally:
        await nc.close()


@pytest.fixture
async def py_clients() -> AsyncIterator[list[socketio.AsyncClient]]:
    clients: list[socketio.AsyncClient] = []
    try:
        yield clients
    finally:
        for client in clients:
            await client.disconnect()


async def shop(js: JsClients, name: str, url: str, user: str) -> dict[str, Any]:
    return await js.connect(name, url, "/shop", auth={"key": "good", "user": user})


# --- connect ------------------------------------------------------------------------------


async def test_connect_accepted_and_refused(cluster: Cluster, worker: Worker,
                                            js: JsClients) -> None:
    url = cluster.gateways[0].url
    assert (await shop(js, "a", url, "u1"))["type"] == "connect"
    assert await js.expect_event("a", "welcome") == [{"user": "u1"}]
    refused = await js.connect("b", url, "/shop", auth={"key": "bad"})
    assert refused == {"type": "connect_error", "id": "b", "message": "bad key",
                       "data": {"reason": "nope"}}
    bad_token = await js.connect("c", url, "/shop", token="not-a-token")
    assert bad_token["type"] == "connect_error" and bad_token["message"] == "unauthorized"


async def test_the_connect_hook_sees_the_listed_headers_over_polling(
        cluster: Cluster, worker: Worker, js: JsClients) -> None:
    reply = await js.connect("hd", cluster.gateways[1].url, "/shop",
                             auth={"key": "good", "user": "u-hd"}, transports=["polling"],
                             extraHeaders={"x-app-version": "7", "x-other": "no"})
    assert reply["type"] == "connect"
    assert await js.expect_event("hd", "welcome") == [
        {"user": "u-hd", "headers": {"x-app-version": "7"}}]


def hook_samples(gateway: Service, outcome: str) -> float:
    text = urllib.request.urlopen(gateway.url + "/metrics", timeout=5 * UNIT).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("switchboard_gateway_hook_requests_total{") and (
                f'outcome="{outcome}"' in line and 'namespace="/gated"' in line):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_unreachable_connect_hook_then_admitted_once_a_worker_is_back(
        cluster: Cluster, nats_server: NatsServer, js: JsClients) -> None:
    gateway = cluster.gateways[1]
    before = await asyncio.to_thread(hook_samples, gateway, "unavailable")
    await js._send({"op": "connect", "id": "g", "url": gateway.url, "nsp": "/gated", "opts": {
        "transports": ["websocket"], "auth": {"user": "late"}, "reconnectionDelay": 100,
        "reconnectionDelayMax": 300}})
    for _ in range(200):  # until the gateway has closed an attempt for want of a worker
        if await asyncio.to_thread(hook_samples, gateway, "unavailable") > before:
            break
        await asyncio.sleep(0.05 * UNIT)
    else:
        pytest.fail("the connect hook was never found unreachable")
    assert not [m for m in js.pending("g") if m["type"] == "connect"]
    nc = await nats.connect(nats_server.url)

    async def admit(msg: Msg) -> None:
        await msg.respond(orjson.dumps({"ok": True, "user": "late"}))

    try:
        await nc.subscribe(f"{cluster.prefix}.hook.gated.connect", queue="app", cb=admit)
        await nc.flush()
        assert (await js.expect("g", {"connect"}, within=10 * UNIT))["type"] == "connect"
    finally:
        await nc.close()


# --- events -------------------------------------------------------------------------------


async def test_emit_with_ack_returns_the_workers_answer(cluster: Cluster, worker: Worker,
                                                        js: JsClients,
                                                        py_clients: list[Any]) -> None:
    await shop(js, "a", cluster.gateways[0].url, "u1")
    answer = await js.call("a", "order:place", {"id": "k-1", "qty": 2})
    assert answer == {"got": [{"id": "k-1", "qty": 2}], "id": "u1:k-1",
                      "data": {"plan": "pro"}, "user": "u1"}
    assert worker.seen[-1]["event"] == "order:place" and worker.seen[-1]["ack"] is True
    py = socketio.AsyncClient(reconnection=False)
    py_clients.append(py)
    await py.connect(cluster.gateways[1].url, transports=["websocket"], namespaces=["/shop"],
                     auth={"key": "good", "user": "py"}, wait_timeout=5)
    got = await py.call("order:place", {"qty": 1}, namespace="/shop", timeout=5 * UNIT)
    assert got["user"] == "py" and ":" not in got["id"]


async def test_binary_arguments_round_trip(cluster: Cluster, worker: Worker,
                                           js: JsClients) -> None:
    await shop(js, "a", cluster.gateways[0].url, "u1")
    assert await js.call("a", "bin", b"\x01\x02\x03") == b"\x03\x02\x01"


async def test_typed_error_acks(cluster: Cluster, worker: Worker, js: JsClients) -> None:
    await shop(js, "a", cluster.gateways[0].url, "u1")
    assert await js.call("a", "fail", {}) == {"ok": False, "error": {
        "code": "out_of_stock", "message": "none left", "data": {"left": 0}}}


async def test_a_worker_that_never_answers_is_timeout_and_its_late_reply_dropped(
        cluster: Cluster, worker: Worker, js: JsClients) -> None:
    await shop(js, "a", cluster.gateways[0].url, "u1")
    loop = asyncio.get_running_loop()
    started = loop.time()
    answer = await js.call("a", "slow", {})
    assert answer["error"]["code"] == "timeout"
    assert loop.time() - started >= TIMEOUT_MS / 1000
    [late] = worker.held
    await late.respond(orjson.dumps({"ok": True, "ack": ["late"]}))
    assert (await js.call("a", "echo", 1))["got"] == [1]
    assert not [m for m in js.pending("a") if m["type"] == "ack"]


async def test_no_worker_is_unavailable_at_once(cluster: Cluster, worker: Worker,
                                                js: JsClients) -> None:
    await js.connect("a", cluster.gateways[0].url, "/lonely", token=make_token("u1"))
    answer = await js.call("a", "anything", {}, within=5 * UNIT)  # hook_timeout_ms is 60 s
    assert answer["error"]["code"] == "unavailable"
    assert not worker.seen


async def test_one_sockets_events_arrive_in_order(cluster: Cluster, worker: Worker,
                                                  js: JsClients) -> None:
    await shop(js, "a", cluster.gateways[1].url, "u1")
    for n in range(99):
        await js.emit("a", "seq", {"n": n})
    await js.call("a", "seq", {"n": 99}, within=20 * UNIT)
    assert [r["args"][0]["n"] for r in worker.seen if r["event"] == "seq"] == list(range(100))
    assert [r["ack"] for r in worker.seen][:2] == [False, False]


async def test_join_and_publish_reach_a_member_on_the_other_gateway(
        cluster: Cluster, worker: Worker, js: JsClients) -> None:
    one, two = cluster.gateways
    await js.connect("a", one.url, "/log", token=make_token("u1"))
    await js.connect("b", two.url, "/log", token=make_token("u2"))
    assert (await js.call("b", "room:join", {"room": "room:r1"}))["ok"] is True
    assert await js.call("a", "pub", {"room": "room:r1", "n": 7}) == {"ok": True}
    member = await js.expect_event("b", "placed")
    assert member[0]["n"] == 7 and member[0]["room"] == "room:r1"
    assert isinstance(member[0]["seq"], int) and isinstance(member[0]["prev"], int)
    assert isinstance(member[-1], str)  # the recovery offset of a durable namespace
    mine = await js.expect_event("a", "placed")  # joined by the reply before its publish
    assert mine[0]["seq"] == member[0]["seq"]


async def test_the_event_bucket(cluster: Cluster, worker: Worker, js: JsClients) -> None:
    await js.connect("a", cluster.gateways[0].url, "/tight", token=make_token("u1"))
    answers = await asyncio.gather(*(js.call("a", "echo", n) for n in range(3)))
    limited = [a for a in answers if a.get("error", {}).get("code") == "rate_limited"]
    assert len(limited) == 1 and limited[0]["error"]["retry_after_ms"] > 0
    assert len(worker.seen) == 2


async def test_the_gateway_in_flight_cap(start_gateway: Callable[..., Service],
                                         cluster: Cluster, worker: Worker,
                                         js: JsClients) -> None:
    capped = start_gateway(SB_HOOK_MAX_IN_FLIGHT="1", **cluster.env)
    await shop(js, "a", capped.url, "u1")
    await shop(js, "b", capped.url, "u2")
    slow = asyncio.ensure_future(js.call("a", "slow", {}))
    async with asyncio.timeout(5 * UNIT):
        await worker.arrived.wait()
    assert (await js.call("b", "echo", 1))["error"]["code"] == "overloaded"
    assert (await slow)["error"]["code"] == "timeout"
    assert (await js.call("b", "echo", 2))["got"] == [2]


# --- workers dying ------------------------------------------------------------------------


@contextlib.contextmanager
def worker_process(nats_url: str, prefix: str, name: str, mode: str
                   ) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.hook_worker", nats_url,
                             prefix, name, mode], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ})
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


async def test_a_worker_sigkilled_mid_stream(cluster: Cluster, nats_server: NatsServer,
                                             worker: Worker, js: JsClients) -> None:
    url = cluster.gateways[0].url
    for name in ("a", "b"):
        await js.connect(name, url, "/jobs", token=make_token(name))
    with worker_process(nats_server.url, cluster.prefix, "held", "hold") as held:
        pending = [asyncio.ensure_future(js.call(name, "work", {})) for name in ("a", "b")]
        assert held.stdout is not None
        for _ in pending:
            line = await asyncio.to_thread(held.stdout.readline)
            assert line.startswith("got ")
        with worker_process(nats_server.url, cluster.prefix, "other", "answer"):
            held.kill()
            held.wait()
            answers = await asyncio.gather(*pending)
            assert {a["error"]["code"] for a in answers} == {"timeout"}
            for _ in range(5):
                assert (await js.call("a", "work", {}))["worker"] == "other"


# --- the hook client against a real server --------------------------------------------------


async def test_hook_client_outcomes(nats_server: NatsServer) -> None:
    nc = LightClient()
    await nc.connect(nats_server.url)
    subjects = Subjects(f"hc{uuid.uuid4().hex[:6]}")
    client = HookClient(nc, subjects, 1, GatewayMetrics(CollectorRegistry()))
    await client.start([300])
    answers: asyncio.Queue[bytes | HookFailure] = asyncio.Queue()
    try:
        call = HookCall("/", "e", b"{}", 300)
        client.call(call, answers.put_nowait)
        assert await asyncio.wait_for(answers.get(), 5 * UNIT) is HookFailure.UNAVAILABLE

        async def echo(msg: Msg) -> None:
            if re.search(r"\.silent$", msg.subject) is None:
                await msg.respond(msg.data)

        await nc.subscribe(subjects.hook_event("/", "*").rsplit(".", 1)[0] + ".*", cb=echo)
        await nc.flush()
        client.call(HookCall("/", "e", b'{"x":1}', 300), answers.put_nowait)
        assert await asyncio.wait_for(answers.get(), 5 * UNIT) == b'{"x":1}'
        client.call(HookCall("/", "silent", b"{}", 300), answers.put_nowait)
        client.call(HookCall("/", "e", b"{}", 300), answers.put_nowait)  # over the cap of 1
        assert await asyncio.wait_for(answers.get(), 5 * UNIT) is HookFailure.OVERLOADED
        assert await asyncio.wait_for(answers.get(), 5 * UNIT) is HookFailure.TIMEOUT
        client.call(HookCall("/", "e", b"{}", 999), answers.put_nowait)  # no inbox for it
        assert await asyncio.wait_for(answers.get(), 5 * UNIT) is HookFailure.UNAVAILABLE
    finally:
        client.close()
        await nc.close()


async def test_connects_and_disconnects_reach_the_lifecycle_stream(
        cluster: Cluster, worker: Worker, nats_server: NatsServer, js: JsClients) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        stream = Subjects(cluster.prefix).lifecycle_stream()
        reply = await js.connect("life", cluster.gateways[0].url, "/log",
                                 token=make_token("u-life"))
        sid = reply["sid"]
        await js._send({"op": "close", "id": "life"})
        seen: list[tuple[str, dict[str, Any]]] = []
        sub = await nc.jetstream().subscribe(f"{cluster.prefix}.lifecycle.log.*", stream=stream,
                                             ordered_consumer=True)
        async with asyncio.timeout(10 * UNIT):
            while len([s for s in seen if s[1]["sid"] == sid]) < 2:
                msg = await sub.next_msg(timeout=10 * UNIT)
                seen.append((msg.subject.rsplit(".", 1)[1], orjson.loads(msg.data)))
        mine = [(kind, body) for kind, body in seen if body["sid"] == sid]
        assert [kind for kind, _ in mine] == ["connect", "disconnect"]
        for _, body in mine:
            assert body["nsp"] == "/log" and body["user"] == "u-life"
            assert body["gateway"] == cluster.gateways[0].env["SB_INSTANCE_ID"]
            assert isinstance(body["ts"], int)
        assert mine[1][1]["reason"] == "left"
    finally:
        await nc.close()
