"""The gateway on the wire, seen by a raw WebSocket client: the facts socket.io-client and
python-socketio rely on, close codes, HTTP statuses, health and metrics."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Callable

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.processes import Service
from tests.support.rawhttp import exchange, statuses
from tests.support.timing import UNIT
from tests.support.tokens import make_token

pytestmark = pytest.mark.integration

PATH = "/socket.io/?EIO=4&transport=websocket"


async def recv_text(ws: ClientConnection, skip_pings: bool = True) -> str:
    while True:
        frame = await asyncio.wait_for(ws.recv(), 5 * UNIT)
        assert isinstance(frame, str)
        if not (skip_pings and frame == "2"):
            return frame


async def open_chat(url: str, sub: str = "wire") -> ClientConnection:
    ws = await connect(url + PATH, compression=None)
    await recv_text(ws)
    await ws.send("40/chat," + orjson.dumps({"token": make_token(sub)}).decode())
    assert (await recv_text(ws)).startswith('40/chat,{"sid":"')
    return ws


async def test_open_packet_advertises_the_configured_heartbeat_and_payload(
    gateway_pair: list[Service],
) -> None:
    async with connect(gateway_pair[0].ws_url + PATH, compression=None) as ws:
        text = await recv_text(ws)
        assert text[0] == "0"
        body = orjson.loads(text[1:])
        assert body["upgrades"] == []
        assert (body["pingInterval"], body["pingTimeout"], body["maxPayload"]) == (
            25000, 5000, 1000000)
        random, _, owner = body["sid"].partition("~")
        assert len(random) >= 22 and owner == gateway_pair[0].env["SB_INSTANCE_ID"]
        assert " " not in text


async def test_connect_reply_carries_sid_on_every_namespace(gateway_pair: list[Service]) -> None:
    async with connect(gateway_pair[0].ws_url + PATH + "&token=" + make_token("m")) as ws:
        await recv_text(ws)
        await ws.send("40")
        assert (await recv_text(ws)).startswith('40{"sid":"')
        await ws.send("40/live-updates,")
        assert (await recv_text(ws)).startswith('40/live-updates,{"sid":"')


async def test_frame_over_max_payload_closes_with_1009(gateway_pair: list[Service]) -> None:
    ws = await open_chat(gateway_pair[0].ws_url)
    await ws.send('42/chat,["message:send",{"text":"' + "x" * 1_000_001 + '"}]')
    with pytest.raises(ConnectionClosed) as closed:
        await recv_text(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


REQUEST_ERROR = '42/chat,["request:error",{"code":"bad_request"'


@pytest.mark.parametrize(("garbage", "answer"), [
    ("4", REQUEST_ERROR),
    ("42/chat,[", REQUEST_ERROR),
    ("42/chat,{}", REQUEST_ERROR),
    ("45x-[]", REQUEST_ERROR),
    ('42/chat,["connect"]', REQUEST_ERROR),
    ("42/chat,0[1,]", '43/chat,0[{"ok":false,"error":{"code":"bad_request"'),
    ('42/chat,9["connect"]', '43/chat,9[{"ok":false,"error":{"code":"bad_request"'),
])
async def test_malformed_packet_gets_an_error_answer_and_the_socket_lives(
    gateway_pair: list[Service], garbage: str, answer: str
) -> None:
    ws = await open_chat(gateway_pair[0].ws_url)
    await ws.send(garbage)
    assert (await recv_text(ws)).startswith(answer)
    await ws.send('42/chat,7["room:join",{"room":"room:after"}]')
    assert await recv_text(ws) == '43/chat,7[{"ok":true,"room":"room:after"}]'
    await ws.close()


async def test_event_before_connect_closes_the_transport(gateway_pair: list[Service]) -> None:
    async with connect(gateway_pair[0].ws_url + PATH) as ws:
        await recv_text(ws)
        await ws.send('42/chat,["room:join",{"room":"room:x"}]')
        with pytest.raises(ConnectionClosed):
            await recv_text(ws)


async def test_unanswered_pings_close_with_4000(start_gateway: Callable[..., Service]) -> None:
    gateway = start_gateway(SB_PING_INTERVAL_MS="200", SB_PING_TIMEOUT_MS="100")
    ws = await open_chat(gateway.ws_url)
    pings = 0
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            if await asyncio.wait_for(ws.recv(), 5 * UNIT) == "2":
                pings += 1
    assert pings == 2
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000


async def test_answered_pings_keep_the_connection(start_gateway: Callable[..., Service]) -> None:
    gateway = start_gateway(SB_PING_INTERVAL_MS="100", SB_PING_TIMEOUT_MS="100")
    ws = await open_chat(gateway.ws_url)
    for _ in range(5):
        assert await asyncio.wait_for(ws.recv(), 5 * UNIT) == "2"
        await ws.send("3")
    await ws.send('42/chat,1["room:join",{"room":"room:alive"}]')
    assert await recv_text(ws) == '43/chat,1[{"ok":true,"room":"room:alive"}]'
    await ws.close()


async def test_no_namespace_connect_in_time_closes(start_gateway: Callable[..., Service]) -> None:
    gateway = start_gateway(SB_CONNECT_TIMEOUT_MS="200")
    async with connect(gateway.ws_url + PATH) as ws:
        await recv_text(ws)
        with pytest.raises(ConnectionClosed) as closed:
            await recv_text(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4001


@pytest.mark.parametrize(
    ("suffix", "headers", "status"),
    [
        ("&token=not-a-jwt", {}, 401),
        ("&token=" + make_token("x", ttl=-60), {}, 401),
        ("", {"Authorization": "Bearer " + make_token("x", secret="w" * 40)}, 401),
        ("", {"Origin": "https://evil.example"}, 403),
    ],
)
async def test_refused_upgrades_get_their_http_status(
    start_gateway: Callable[..., Service], suffix: str, headers: dict[str, str], status: int
) -> None:
    gateway = start_gateway(SB_ALLOWED_ORIGINS="https://chat.example")
    with pytest.raises(InvalidStatus) as refused:
        await connect(gateway.ws_url + PATH + suffix, additional_headers=headers)
    assert refused.value.response.status_code == status
    assert "Bearer" not in gateway.log_tail() and "token=ey" not in gateway.log_tail()


async def test_allowed_origin_and_missing_origin_connect(
    start_gateway: Callable[..., Service],
) -> None:
    gateway = start_gateway(SB_ALLOWED_ORIGINS="https://chat.example")
    async with connect(gateway.ws_url + PATH, origin="https://chat.example") as ws:  # type: ignore[arg-type]
        assert (await recv_text(ws))[0] == "0"


@pytest.mark.parametrize("query", ["?EIO=3&transport=websocket", "?EIO=4&transport=polling"])
async def test_unsupported_protocol_or_transport_is_400(
    gateway_pair: list[Service], query: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await connect(gateway_pair[0].ws_url + "/socket.io/" + query)
    assert refused.value.response.status_code == 400


def test_health_readiness_and_metrics(gateway_pair: list[Service]) -> None:
    base = gateway_pair[0].url
    for path in ("/healthz", "/readyz"):
        with urllib.request.urlopen(base + path, timeout=5) as answer:
            assert answer.status == 200
    with urllib.request.urlopen(base + "/metrics", timeout=5) as answer:
        text = answer.read().decode()
    for name in ("switchboard_gateway_connections", "switchboard_gateway_packets_in_total",
                 "switchboard_gateway_auth_failures_total", "switchboard_nats_reconnects_total",
                 "switchboard_nats_connected"):
        assert name in text
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(base + "/nope", timeout=5)
    missing.value.close()
    assert missing.value.code == 404


async def test_http_keep_alive_pipelining_and_preflight(gateway_pair: list[Service]) -> None:
    wire = await exchange(gateway_pair[0].port,
                          b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"
                          b"GET /readyz HTTP/1.1\r\nHost: gw\r\n\r\n"
                          b"OPTIONS /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n\r\n"
                          b"GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n", quiet=0.5)

    assert statuses(wire) == [200, 200, 204, 404]
    assert wire.index(b"ok\n") < wire.index(b"ready\n")
    assert wire.count(b"Server: switchboard") == 4


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"NOT HTTP\r\n\r\n", 400),
    (b"POST /socket.io/ HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", 413),
    (b"GET /healthz HTTP/1.1\r\nX-Big: " + b"x" * 20_000 + b"\r\n\r\n", 431),
    (b"GET " + PATH.encode() + b" HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", 426),
    (b"GET " + PATH.encode() + b" HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Version: 13\r\n\r\n", 400),
])
async def test_http_refusals_close_the_connection(gateway_pair: list[Service],
                                                  request_bytes: bytes, status: int) -> None:
    then = b"GET /healthz HTTP/1.1\r\n\r\n"

    wire = await exchange(gateway_pair[0].port, request_bytes + then, quiet=0.5)

    assert statuses(wire) == [status]
    assert b"Connection: close" in wire
