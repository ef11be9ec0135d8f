"""Every dashboard query returns data and every alert rule evaluates, on a real Prometheus.

``python -m devcluster --prometheus`` runs the services and Debian's Prometheus (scraping every
second, with deploy/prometheus/switchboard-rules.yml); raw Engine.IO clients then cause each
thing a panel shows — handshakes refused and accepted, messages in and out on two gateways,
rate-limited requests, a recovered and a fresh session, a slow consumer cut with 4008, server
API calls — and the test asks Prometheus for every dashboard target and every rule.
Without a ``prometheus`` binary it skips and says how to get one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
import websockets.asyncio.client as wsclient
from nats.aio.msg import Msg
from websockets.exceptions import InvalidStatus

from devcluster.natsserver import free_ports
from devcluster.ports import free_base_port
from devcluster.prometheus import PROMETHEUS_OFFSET
from tests.deploy.promql import Query, dashboard_queries, rule_queries
from tests.support.timing import UNIT
from tests.support.tokens import make_token

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(__import__("shutil").which("prometheus") is None,
                       reason="prometheus not installed (Debian: apt-get install prometheus)"),
]

SECRET = "live-prometheus-test-secret-of-at-least-32-bytes"
API_KEY = "live-prometheus-test-api-key"
STARTED = re.compile(r"^devcluster: started (\S+) pid=(\d+)", re.MULTILINE)
SEND_BUDGET = 65_536


@dataclass
class Live:
    gateways: list[str]
    router: str
    prometheus: str
    nats: str = ""


NAMESPACES = '[namespaces."/orders"]\nhooks = true\n'


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    """devcluster with 2 gateways and Prometheus; every process is gone afterwards."""
    (prom_port,) = free_ports(1)
    stderr_path = tmp_path / "devcluster.stderr"
    (tmp_path / "namespaces.toml").write_text(NAMESPACES)
    env = {**os.environ, "SB_JWT_SECRET": SECRET, "SB_API_KEY": API_KEY,
           "SB_NAMESPACES_FILE": str(tmp_path / "namespaces.toml"),
           "SB_ENV": "development", "SB_SEND_BUDGET_BYTES": str(SEND_BUDGET),
           "SB_CHAT_RATE": "100000", "SB_CHAT_BURST": "100000"}
    with stderr_path.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "devcluster", "--gateways", "2", "--base-port",
            str(free_base_port(2, extra_offsets=(PROMETHEUS_OFFSET,))), "--prometheus",
            "--prometheus-port", str(prom_port),
            "--prometheus-interval", "1", "--stop-timeout", "5", cwd=tmp_path, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=stderr)
    try:
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), 60 * UNIT)
        except TimeoutError:
            pytest.fail("devcluster not READY:\n" + stderr_path.read_text(errors="replace"))
        text = line.decode()
        assert text.startswith("READY "), stderr_path.read_text(errors="replace")
        ready = json.loads(text.removeprefix("READY "))
        yield Live(ready["gateways"], ready["router"], f"http://127.0.0.1:{prom_port}",
                   ready["nats"])
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        for _name, pid in STARTED.findall(stderr_path.read_text(errors="replace")):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)  # only if devcluster failed to stop it


# -- a minimal Engine.IO/Socket.IO client: exactly the packets the traffic needs -------------


class Socket:
    def __init__(self, ws: wsclient.ClientConnection) -> None:
        self.ws = ws
        self._ack = 0

    @classmethod
    async def open(cls, gateway: str, token: str | None = None,
                   sock: socket.socket | None = None) -> Socket:
        url = gateway.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        if token is not None:
            url += f"&token={token}"
        ws = await wsclient.connect(url, compression=None, max_queue=None, sock=sock,
                                    max_size=None)
        assert str(await ws.recv()).startswith("0")
        return cls(ws)

    async def connect(self, nsp: str, auth: dict[str, Any] | None = None) -> dict[str, Any]:
        await self.ws.send(f"40{nsp}," + (json.dumps(auth) if auth else ""))
        reply = await self.expect(f"40{nsp},")
        answer: dict[str, Any] = json.loads(reply.removeprefix(f"40{nsp},"))
        return answer

    async def call(self, nsp: str, event: str, payload: dict[str, Any]) -> Any:
        self._ack += 1
        await self.ws.send(f"42{nsp},{self._ack}" + json.dumps([event, payload]))
        reply = await self.expect(f"43{nsp},{self._ack}")
        return json.loads(reply.removeprefix(f"43{nsp},{self._ack}"))[0]

    async def emit(self, nsp: str, event: str, payload: dict[str, Any]) -> None:
        await self.ws.send(f"42{nsp}," + json.dumps([event, payload]))

    async def expect(self, prefix: str) -> str:
        """The next packet starting with ``prefix``; pings are answered, others skipped."""
        async with asyncio.timeout(10 * UNIT):
            while True:
                packet = str(await self.ws.recv())
                if packet == "2":
                    await self.ws.send("3")
                elif packet.startswith(prefix):
                    return packet

    async def close(self) -> None:
        await self.ws.close()


async def application_and_polling_traffic(live: Live, http: aiohttp.ClientSession) -> None:
    """An application event answered by a worker (the hook panels), and a polling session
    whose requests and upgrade go to the other gateway (the forwarding and takeover panel)."""
    nc = await nats.connect(live.nats)
    try:
        async def answer(msg: Msg) -> None:
            connect = msg.subject.endswith(".connect")
            await msg.respond(b'{"ok":true}' if connect else b'{"ok":true,"ack":[{"ok":true}]}')

        await nc.subscribe("sb.hook.orders.>", queue="hooks", cb=answer)
        await nc.flush()
        worker_client = await Socket.open(live.gateways[0])
        await worker_client.connect("/orders", {"token": make_token("olga", secret=SECRET)})
        assert await worker_client.call("/orders", "order:place", {"id": "o-1"}) == {"ok": True}
        await worker_client.close()
    finally:
        await nc.close()
    query_string = "/socket.io/?EIO=4&transport=polling"
    async with http.get(live.gateways[0] + query_string) as response:
        sid = json.loads((await response.text())[1:])["sid"]
    connect = "40/chat," + json.dumps({"token": make_token("pat", secret=SECRET)})
    async with http.post(f"{live.gateways[1]}{query_string}&sid={sid}",
                         data=connect.encode()) as response:
        assert await response.text() == "ok"
    # Its upgrade lands on the other gateway too, which takes the session over (the panel's
    # takeovers).
    upgrade = live.gateways[1].replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
    async with wsclient.connect(f"{upgrade}&sid={sid}") as ws:
        await ws.send("2probe")
        assert await asyncio.wait_for(ws.recv(), 10 * UNIT) == "3probe"


async def make_traffic(live: Live, http: aiohttp.ClientSession) -> None:
    gw1, gw2 = live.gateways
    await application_and_polling_traffic(live, http)
    # Refused upgrade: a 401 handshake and an auth failure.
    with pytest.raises(InvalidStatus):
        await Socket.open(gw1, token="not-a-jwt")

    # Messages in and out across both gateways, in a durable and an ephemeral namespace.
    alice, bob = await Socket.open(gw1), await Socket.open(gw2)
    for name, client in (("alice", alice), ("bob", bob)):
        for nsp in ("/chat", "/live-updates"):
            await client.connect(nsp, {"token": make_token(name, secret=SECRET)})
            assert (await client.call(nsp, "room:join", {"room": "room:metrics"}))["ok"]
    for n in range(3):
        ack = await alice.call("/chat", "message:send",
                               {"room": "room:metrics", "text": f"hello {n}", "id": f"m{n}"})
        assert ack["ok"], ack
        await bob.expect('42/chat,["message:received"')
    assert (await alice.call("/chat", "room:presence", {"room": "room:metrics"}))["ok"]

    # Rate limits: request-like events beyond their burst.
    carol = await Socket.open(gw1)
    await carol.connect("/chat", {"token": make_token("carol", secret=SECRET)})
    answers = [await carol.call("/chat", "room:join", {"room": f"room:c{n}"}) for n in range(30)]
    assert any(a.get("error", {}).get("code") == "rate_limited" for a in answers)

    # Recovery: a dropped session comes back on the other gateway; a bogus one starts fresh.
    dave = await Socket.open(gw1)
    hello = await dave.connect("/chat", {"token": make_token("dave", secret=SECRET)})
    assert (await dave.call("/chat", "room:join", {"room": "room:metrics"}))["ok"]
    dave.ws.transport.abort()  # a transport close, as a network failure would
    await alice.call("/chat", "message:send",
                     {"room": "room:metrics", "text": "while dave was away", "id": "m-away"})
    back = await Socket.open(gw2)
    await back.connect("/chat", {"token": make_token("dave", secret=SECRET), "pid": hello["pid"]})
    erin = await Socket.open(gw2)
    await erin.connect("/chat", {"token": make_token("erin", secret=SECRET), "pid": "bogus"})

    # A slow consumer: a socket that stops reading while the server API floods its room
    # (the API, not a client, so no other socket is owed the flood).
    small = socket.socket()
    small.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    small.connect(("127.0.0.1", int(gw1.rsplit(":", 1)[1])))
    stalled = await Socket.open(gw1, sock=small)
    await stalled.connect("/live-updates", {"token": make_token("stalled", secret=SECRET)})
    assert (await stalled.call("/live-updates", "room:join", {"room": "room:flood"}))["ok"]
    stalled.ws.transport.pause_reading()
    headers = {"Authorization": f"Bearer {API_KEY}"}
    flood = {"namespace": "/live-updates", "room": "room:flood", "event": "flood",
             "data": {"text": "x" * 4000}}

    async def publish() -> None:
        async with http.post(f"{live.router}/api/v1/publish", headers=headers,
                             json=flood) as answer:
            assert answer.status in (200, 429), await answer.text()

    try:
        async with asyncio.timeout(30 * UNIT):
            while not await _slow_consumer_cut(http, gw1):
                await asyncio.gather(*(publish() for _ in range(100)))
    finally:
        stalled.ws.transport.abort()
        small.close()

    # The server API on the router.
    async with http.post(f"{live.router}/api/v1/publish", headers=headers, json={
            "namespace": "/chat", "room": "room:metrics", "event": "notice", "data": {}}) as r:
        assert r.status == 200, await r.text()
    async with http.get(f"{live.router}/api/v1/users/alice/connections",
                        headers=headers) as r:
        assert r.status == 200, await r.text()
    for client in (alice, bob, carol, back, erin):
        await client.close()


async def _slow_consumer_cut(http: aiohttp.ClientSession, gateway: str) -> bool:
    async with http.get(f"{gateway}/metrics") as answer:
        return 'switchboard_gateway_closes_total{code="4008"}' in await answer.text()


async def query(http: aiohttp.ClientSession, prometheus: str, expr: str) -> dict[str, Any]:
    async with http.get(f"{prometheus}/api/v1/query", params={"query": expr}) as answer:
        body: dict[str, Any] = await answer.json()
        return body


async def test_every_dashboard_query_returns_data_and_every_rule_evaluates(live: Live) -> None:
    queries = dashboard_queries()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        await make_traffic(live, http)

        # Scrapes run every second: wait until each query has data, up to a deadline.
        empty: list[Query] = list(queries)
        errors: dict[str, str] = {}
        async with asyncio.timeout(30 * UNIT):
            while empty:
                still = []
                for q in empty:
                    body = await query(http, live.prometheus, q.evaluable())
                    if body["status"] != "success":
                        errors[q.where] = body.get("error", "?")
                    elif not body["data"]["result"]:
                        still.append(q)
                empty = still
                assert not errors, errors
                if empty:
                    await asyncio.sleep(1)
        assert not empty, [q.where for q in empty]

        for rule in rule_queries():
            body = await query(http, live.prometheus, rule.evaluable())
            assert body["status"] == "success", f"{rule.where}: {body.get('error')}"
        async with http.get(f"{live.prometheus}/api/v1/rules") as answer:
            groups = (await answer.json())["data"]["groups"]
        evaluated = {rule["name"]: rule for group in groups for rule in group["rules"]}
        assert set(evaluated) == {q.where.removeprefix("rule ") for q in rule_queries()}
        unhealthy = {name: rule.get("lastError") for name, rule in evaluated.items()
                     if rule["health"] != "ok"}
        assert not unhealthy, unhealthy
