"""An upgrade WebSocket that lands on the gateway not holding the session takes it over.

A balancer that sends every polling connection to one gateway and every WebSocket to the
other makes that happen on each upgrade, with the real socket.io-client and its default
options: the session moves in one NATS request, and messages sent before, during and after
the move reach the client once and in order. At the raw protocol level: the packets owed go
out on the new WebSocket first, the old owner forwards what still arrives over polling, and an
upgrade whose owner is gone gets 400.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable

import aiohttp
import nats
import pytest
import socketio
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from devcluster.natsserver import NatsServer
from devcluster.tcpproxy import splice
from shared.subjects import Subjects
from tests.integration.test_polling import metric
from tests.support.jsclient import JsClients
from tests.support.processes import Service
from tests.support.timing import UNIT
from tests.support.tokens import make_token

pytestmark = pytest.mark.integration


class SplitProxy:
    """Each new TCP connection goes by its first request: WebSocket upgrades to ``ws``,
    everything else to ``http`` (so an upgrade always lands on the other gateway)."""

    def __init__(self, http: int, ws: int) -> None:
        self.http, self.ws = http, ws
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            port = self.ws if b"transport=websocket" in head.split(b"\r\n", 1)[0] else self.http
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            up_writer.write(head)
            await splice(reader, writer, up_reader, up_writer)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError,
                asyncio.CancelledError):
            pass
        finally:
            self.tasks.discard(task)
            writer.transport.abort()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
async def split(start_gateway: Callable[..., Service]
                ) -> AsyncIterator[tuple[str, Service, Service]]:
    owner, taker = start_gateway(), start_gateway()
    proxy = SplitProxy(owner.port, taker.port)
    url = await proxy.start()
    try:
        yield url, owner, taker
    finally:
        await proxy.stop()


async def metrics_of(service: Service) -> str:
    async with aiohttp.ClientSession() as http, http.get(service.url + "/metrics") as response:
        return await response.text()


async def test_socket_io_client_defaults_upgrade_onto_the_other_gateway(
    js: JsClients, split: tuple[str, Service, Service]
) -> None:
    url, owner, taker = split
    room, run = f"room:take-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:8]
    await js.connect("peer", owner.url, "/chat", make_token("peer"))
    assert (await js.call("peer", "room:join", {"room": room}))["ok"] is True
    sent: list[int] = []
    reply = await js.connect("mover", url, "/chat", make_token("mover"),
                             transports=["polling", "websocket"])
    assert reply["type"] == "connect"  # on polling, or already upgraded: the move is quick
    assert reply["engine"].endswith("~" + owner.env["SB_INSTANCE_ID"])
    assert (await js.call("mover", "room:join", {"room": room}))["ok"] is True

    async def send(count: int, tag: str) -> None:
        for n in range(count):
            ack = await js.call("peer", "message:send",
                                {"room": room, "text": f"{tag}{n}", "id": f"{tag}-{run}-{n}"})
            assert ack["ok"] is True, ack
            sent.append(ack["seq"])

    sending = asyncio.create_task(send(30, "during"))
    upgraded = await js.expect("mover", {"upgrade"}, within=10 * UNIT)
    assert upgraded["transport"] == "websocket"
    await sending
    ack = await js.call("mover", "message:send", {"room": room, "text": "from mover",
                                                  "id": f"m-{run}"})
    assert ack["ok"] is True, ack
    sent.append(ack["seq"])
    got = [(await js.expect_event("mover", "message:received"))[0]["seq"]
           for _ in range(len(sent))]
    assert got == sorted(sent)
    assert (await js.expect_event("peer", "message:received", within=5 * UNIT)) is not None
    taken = 'switchboard_gateway_takeovers_total{outcome="taken"}'
    assert metric(await metrics_of(taker), taken) >= 1
    assert metric(await metrics_of(owner), taken.replace("taken", "given")) >= 1
    assert all(m["type"] not in ("disconnect", "connect") for m in js.pending("mover"))


async def test_python_socketio_defaults_upgrade_onto_the_other_gateway(
    split: tuple[str, Service, Service]
) -> None:
    url, _, taker = split
    taken = 'switchboard_gateway_takeovers_total{outcome="taken"}'
    before = metric(await metrics_of(taker), taken)
    # A new TCP connection per request, as a browser behind a proxy may make: the upgrade then
    # reaches the balancer on its own connection (aiohttp would reuse a polling one).
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
    client = socketio.AsyncClient(reconnection=False, http_session=http)
    room, run = f"room:take-py-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:8]
    try:
        await client.connect(url, namespaces=["/chat"], auth={"token": make_token("pytake")},
                             wait_timeout=5 * UNIT)
        async with asyncio.timeout(10 * UNIT):
            while client.transport() != "websocket":  # noqa: ASYNC110 (no event for it)
                await asyncio.sleep(0.05)
        assert (await client.call("room:join", {"room": room}, namespace="/chat",
                                  timeout=5 * UNIT))["ok"] is True
        for n in range(3):
            ack = await client.call("message:send", {"room": room, "text": "x",
                                                     "id": f"py-{run}-{n}"}, namespace="/chat",
                                    timeout=5 * UNIT)
            assert ack["ok"] is True, ack
    finally:
        await client.disconnect()
        await http.close()
    assert metric(await metrics_of(taker), taken) == before + 1


async def test_the_taken_over_session_carries_what_it_was_owed_in_order(
    js: JsClients, start_gateway: Callable[..., Service], nats_server: NatsServer
) -> None:
    owner, taker = start_gateway(), start_gateway()
    room, run = f"room:raw-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:8]
    await js.connect("raw-peer", owner.url, "/chat", make_token("raw-peer"))
    assert (await js.call("raw-peer", "room:join", {"room": room}))["ok"] is True
    async with aiohttp.ClientSession() as http:
        poll = f"{owner.url}/socket.io/?EIO=4&transport=polling"
        async with http.get(poll) as response:
            sid = json.loads((await response.text())[1:])["sid"]
        on_owner = f"{poll}&sid={sid}"
        on_taker = f"{taker.url}/socket.io/?EIO=4&transport=polling&sid={sid}"
        await post(http, on_taker, '40/chat,' + json.dumps({"token": make_token("raw")}))
        connected = await get(http, on_owner)
        assert connected.startswith("40/chat,")
        socket_sid = json.loads(connected[len("40/chat,"):].split("\x1e")[0])["sid"]
        await post(http, on_owner, '42/chat,1["room:join",' + json.dumps({"room": room}) + "]")
        assert '"ok":true' in await get(http, on_owner)
        for n in range(3):  # owed to the client when the upgrade comes: they must move
            await js.call("raw-peer", "message:send", {"room": room, "text": f"owed{n}",
                                                       "id": f"o-{run}-{n}"})
        await asyncio.sleep(0.2)
        ws_base = taker.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
        async with ws_connect(f"{ws_base}&sid={sid}") as ws:
            await ws.send("2probe")
            assert await ws.recv() == "3probe"
            await ws.send("5")
            for n in range(3, 6):  # after the switch
                await js.call("raw-peer", "message:send", {"room": room, "text": f"owed{n}",
                                                           "id": f"o-{run}-{n}"})
            texts = []
            while len(texts) < 6:
                frame = str(await asyncio.wait_for(ws.recv(), 5 * UNIT))
                if frame.startswith('42/chat,["message:received"'):
                    texts.append(json.loads(frame[len("42/chat,"):])[1]["text"])
            assert texts == [f"owed{n}" for n in range(6)]
            # The server API's emit by sid still reaches the owner the sid names, which asks
            # the gateway holding the socket now.
            nc = await nats.connect(nats_server.url)
            try:
                answer = await nc.request(
                    Subjects("sb").gateway_emit(owner.env["SB_INSTANCE_ID"]),
                    json.dumps({"sid": socket_sid, "event": "note", "args": [{"n": 1}]}).encode(),
                    timeout=5 * UNIT)
            finally:
                await nc.close()
            assert json.loads(answer.data) == {"ok": True, "delivered": 1}
            while not (frame := str(await asyncio.wait_for(ws.recv(), 5 * UNIT))).startswith(
                    '42/chat,["note"'):
                pass
            assert json.loads(frame[len("42/chat,"):]) == ["note", {"n": 1}]
            # The old owner answers no more for the session: what reaches it is forwarded on.
            async with http.get(on_owner) as response:
                assert response.status == 400
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(f"{ws_base}&sid={'x' * 22}~gw-gone-for-good"):
                pass
        assert refused.value.response.status_code == 400


async def post(http: aiohttp.ClientSession, url: str, body: str) -> None:
    async with http.post(url, data=body.encode()) as response:
        assert response.status == 200, await response.text()


async def get(http: aiohttp.ClientSession, url: str) -> str:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(10 * UNIT), http.get(url) as response:
            assert response.status == 200, await response.text()
            return await response.text()
    raise AssertionError(f"no answer to GET {url}")
