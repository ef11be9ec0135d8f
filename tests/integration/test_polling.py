"""The Engine.IO polling transport and its upgrade, against real gateways on a real NATS:
the unmodified socket.io-client with its default options, python-socketio's default client,
and raw HTTP where the exact answers of the protocol are under test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
import socketio
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from tests.support.jsclient import JsClients
from tests.support.processes import Service
from tests.support.timing import UNIT
from tests.support.tokens import make_token

pytestmark = pytest.mark.integration

SEP = "\x1e"


def polling_url(gateway: Service, **query: str) -> str:
    params = {"EIO": "4", "transport": "polling", **query}
    return gateway.url + "/socket.io/?" + "&".join(f"{k}={v}" for k, v in params.items())


async def handshake(http: aiohttp.ClientSession, gateway: Service,
                    **query: str) -> tuple[str, dict[str, Any]]:
    async with http.get(polling_url(gateway, **query)) as response:
        assert response.status == 200
        body = await response.text()
    assert body[0] == "0"
    opened = json.loads(body[1:])
    return opened["sid"], opened


async def test_default_options_poll_then_upgrade_without_losing_a_message(
    js: JsClients, gateway_pair: list[Service]
) -> None:
    one, two = gateway_pair
    reply = await js.connect("ann", one.url, "/chat", make_token("ann"),
                             transports=["polling", "websocket"])
    assert reply["type"] == "connect"
    await js.connect("ben", two.url, "/chat", make_token("ben"))
    for client in ("ann", "ben"):
        assert (await js.call(client, "room:join", {"room": "room:poll"}))["ok"] is True
    for n in range(30):  # sent while the upgrade happens
        await js.emit("ben", "message:send", {"room": "room:poll", "text": f"m{n}",
                                              "id": f"b-{n}"})
    upgrade = await js.expect("ann", {"upgrade"})
    assert upgrade["transport"] == "websocket"
    async with aiohttp.ClientSession() as http, http.get(one.url + "/metrics") as response:
        metrics = await response.text()
    assert metric(metrics, "switchboard_gateway_upgrades_total") >= 1
    assert metric(metrics, 'switchboard_gateway_sessions_opened_total{transport="polling"}') >= 1
    texts = [(await js.expect_event("ann", "message:received"))[0]["text"] for _ in range(30)]
    assert texts == [f"m{n}" for n in range(30)]
    ack = await js.call("ann", "message:send", {"room": "room:poll", "text": "after",
                                                 "id": "a-1"})
    assert ack["ok"] is True
    seen = [(await js.expect_event("ben", "message:received"))[0]["text"] for _ in range(31)]
    assert seen == [*(f"m{n}" for n in range(30)), "after"]


async def test_polling_only_client_sends_and_receives_binary(
    js: JsClients, gateway_pair: list[Service]
) -> None:
    one, two = gateway_pair
    reply = await js.connect("cat", one.url, "/chat", make_token("cat"),
                             transports=["polling"], upgrade=False)
    assert reply["type"] == "connect" and reply["transport"] == "polling"
    await js.connect("dan", two.url, "/chat", make_token("dan"))
    for client in ("cat", "dan"):
        await js.call(client, "room:join", {"room": "room:bin-poll"})
    blob = bytes(range(256)) * 8
    ack = await js.call("cat", "message:send", {"room": "room:bin-poll", "text": "",
                                                 "id": "c-1", "attachment": blob})
    assert ack["ok"] is True
    message, _ = await js.expect_event("dan", "message:received")
    assert message["attachment"] == blob
    await js.call("dan", "message:send", {"room": "room:bin-poll", "text": "back",
                                          "id": "d-1", "attachment": b"\x00\xff"})
    own, _ = await js.expect_event("cat", "message:received")
    assert own["attachment"] == blob
    message, _ = await js.expect_event("cat", "message:received")
    assert message["attachment"] == b"\x00\xff" and message["text"] == "back"


async def test_python_socketio_default_client_connects_and_acks(
    gateway_pair: list[Service]
) -> None:
    client = socketio.AsyncClient(reconnection=False)
    try:
        await client.connect(gateway_pair[0].url, namespaces=["/chat"],
                             auth={"token": make_token("eve")}, wait_timeout=5 * UNIT)
        ack = await client.call("room:join", {"room": "room:py-poll"}, namespace="/chat",
                                timeout=5 * UNIT)
        assert ack == {"ok": True, "room": "room:py-poll"}
    finally:
        await client.disconnect()


async def test_handshake_answers_the_open_packet_with_cors_and_no_store(
    gateway_pair: list[Service]
) -> None:
    async with aiohttp.ClientSession() as http, http.get(polling_url(gateway_pair[0]),
                        headers={"Origin": "http://app.example"}) as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in response.headers
        body = await response.text()
    opened = json.loads(body[1:])
    assert opened["upgrades"] == ["websocket"]
    assert opened["maxPayload"] == 1_000_000 and len(opened["sid"]) >= 20


async def test_protocol_errors_have_the_reference_codes(gateway_pair: list[Service]) -> None:
    gateway = gateway_pair[0]
    async with aiohttp.ClientSession() as http:
        async with http.post(polling_url(gateway), data=b"40") as response:
            assert response.status == 400 and (await response.json())["code"] == 2
        async with http.get(polling_url(gateway, sid="nope")) as response:
            assert response.status == 400 and (await response.json())["code"] == 1
        async with http.get(gateway.url + "/socket.io/?EIO=4&transport=carrier") as response:
            assert response.status == 400
        sid, _ = await handshake(http, gateway)
        async with http.post(polling_url(gateway, sid=sid), data=b"b%%%") as response:
            assert response.status == 400 and (await response.json())["code"] == 3
        async with http.post(polling_url(gateway, sid=sid),
                             data=b"4" + b"x" * 1_000_001) as response:
            assert response.status == 413


async def test_post_answers_ok_and_the_reply_comes_on_the_next_get(
    gateway_pair: list[Service]
) -> None:
    gateway = gateway_pair[0]
    async with aiohttp.ClientSession() as http:
        sid, _ = await handshake(http, gateway)
        token = make_token("fay")
        connect = "40/chat," + json.dumps({"token": token})
        async with http.post(polling_url(gateway, sid=sid), data=connect.encode()) as response:
            assert response.status == 200 and await response.text() == "ok"
            assert response.headers["Content-Type"].startswith("text/html")
        async with http.get(polling_url(gateway, sid=sid)) as response:
            packets = (await response.text()).split(SEP)
        assert packets[0].startswith('40/chat,{"sid":')
        join = '42/chat,1["room:join",{"room":"room:raw"}]' + SEP + "3"
        async with http.post(polling_url(gateway, sid=sid), data=join.encode()) as response:
            assert await response.text() == "ok"
        async with http.get(polling_url(gateway, sid=sid)) as response:
            packets = (await response.text()).split(SEP)
        assert '43/chat,1[{"ok":true,"room":"room:raw"}]' in packets


async def test_two_pending_gets_end_the_session(gateway_pair: list[Service]) -> None:
    gateway = gateway_pair[0]
    async with aiohttp.ClientSession() as http:
        sid, _ = await handshake(http, gateway)
        first = asyncio.ensure_future(http.get(polling_url(gateway, sid=sid)))
        await asyncio.sleep(0.3 * UNIT)
        async with http.get(polling_url(gateway, sid=sid)) as response:
            assert response.status == 400
        async with await asyncio.wait_for(first, 5 * UNIT) as response:
            assert await response.text() == "1"
        async with http.get(polling_url(gateway, sid=sid)) as response:
            assert response.status == 400


async def test_preflight_and_listed_origins_echo_with_credentials(
    start_gateway: Callable[..., Service]
) -> None:
    gateway = start_gateway(SB_ALLOWED_ORIGINS="http://app.example")
    async with aiohttp.ClientSession() as http:
        headers = {"Origin": "http://app.example", "Access-Control-Request-Method": "POST",
                   "Access-Control-Request-Headers": "content-type"}
        async with http.options(polling_url(gateway), headers=headers) as response:
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == "http://app.example"
            assert response.headers["Access-Control-Allow-Credentials"] == "true"
            assert "POST" in response.headers["Access-Control-Allow-Methods"]
            assert response.headers["Vary"] == "Origin"
        async with http.get(polling_url(gateway),
                            headers={"Origin": "http://app.example"}) as response:
            assert response.status == 200
            assert response.headers["Access-Control-Allow-Origin"] == "http://app.example"
        async with http.get(polling_url(gateway),
                            headers={"Origin": "http://evil.example"}) as response:
            assert response.status == 403
            assert "Access-Control-Allow-Origin" not in response.headers


async def test_polling_can_be_turned_off(start_gateway: Callable[..., Service]) -> None:
    gateway = start_gateway(SB_TRANSPORTS="websocket")
    async with aiohttp.ClientSession() as http, http.get(polling_url(gateway)) as response:
        assert response.status == 400 and (await response.json())["code"] == 0


async def test_requests_landing_on_another_gateway_are_served_by_the_owner(
    gateway_pair: list[Service]
) -> None:
    owner, other = gateway_pair
    async with aiohttp.ClientSession() as http:
        sid, _ = await handshake(http, owner)
        connect = "40/chat," + json.dumps({"token": make_token("gus")})
        async with http.post(polling_url(other, sid=sid), data=connect.encode()) as response:
            assert response.status == 200 and await response.text() == "ok"
        async with http.get(polling_url(other, sid=sid)) as response:
            assert response.status == 200
            assert response.headers["Cache-Control"] == "no-store"
            assert (await response.text()).startswith('40/chat,{"sid":')
        join = '42/chat,1["room:join",{"room":"room:fwd"}]'
        async with http.post(polling_url(other, sid=sid), data=join.encode()) as response:
            assert await response.text() == "ok"
        async with http.get(polling_url(owner, sid=sid)) as response:
            assert '43/chat,1[{"ok":true,"room":"room:fwd"}]' in (await response.text())
        parked = asyncio.ensure_future(http.get(polling_url(other, sid=sid)))
        await asyncio.sleep(0.3 * UNIT)
        send = '42/chat,2["message:send",{"room":"room:fwd","text":"hop","id":"g-1"}]'
        async with http.post(polling_url(owner, sid=sid), data=send.encode()) as response:
            assert await response.text() == "ok"
        body = ""
        async with await asyncio.wait_for(parked, 5 * UNIT) as response:
            body = await response.text()
        while '"text":"hop"' not in body:
            async with http.get(polling_url(other, sid=sid)) as response:
                body += await response.text()
        assert '"text":"hop"' in body
        async with http.get(other.url + "/metrics") as response:
            metrics = await response.text()
    assert metric(metrics, 'switchboard_gateway_polling_forwarded_total{method="POST",'
                           'outcome="ok"}') >= 2
    assert metric(metrics, 'switchboard_gateway_polling_forwarded_total{method="GET",'
                           'outcome="ok"}') >= 2


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_request_for_a_gateway_that_is_gone_is_an_unknown_session(
    start_gateway: Callable[..., Service], gateway_pair: list[Service]
) -> None:
    doomed = start_gateway()
    async with aiohttp.ClientSession() as http:
        sid, _ = await handshake(http, doomed)
        doomed.stop()
        async with http.get(polling_url(gateway_pair[0], sid=sid)) as response:
            assert response.status == 400 and (await response.json())["code"] == 1


async def test_a_polling_client_that_stops_polling_is_a_slow_consumer(
    start_gateway: Callable[..., Service], js: JsClients
) -> None:
    gateway = start_gateway(SB_SEND_BUDGET_BYTES="20000")
    async with aiohttp.ClientSession() as http:
        sid, _ = await handshake(http, gateway)
        connect = "40/chat," + json.dumps({"token": make_token("idle")})
        async with http.post(polling_url(gateway, sid=sid), data=connect.encode()) as response:
            assert await response.text() == "ok"
        join = '42/chat,1["room:join",{"room":"room:slow-poll"}]'
        async with http.post(polling_url(gateway, sid=sid), data=join.encode()) as response:
            assert await response.text() == "ok"
        await js.connect("flood", gateway.url, "/chat", make_token("flood"))
        await js.call("flood", "room:join", {"room": "room:slow-poll"})
        for n in range(40):  # ~40 KB for a poller that never polls
            await js.call("flood", "message:send", {"room": "room:slow-poll", "text": "z" * 900,
                                                    "id": f"f-{sid[:8]}-{n}"})
        async with http.get(gateway.url + "/metrics") as response:
            metrics = await response.text()
        assert metric(metrics, 'switchboard_gateway_closes_total{code="4008"}') == 1
        async with http.get(polling_url(gateway, sid=sid)) as response:
            assert (await response.text()).endswith("1")  # what fitted, then the close packet


async def test_an_upgrade_is_served_once_and_elsewhere_it_takes_the_session_over(
    gateway_pair: list[Service]
) -> None:
    owner, other = gateway_pair
    async with aiohttp.ClientSession() as http:
        sid, _ = await handshake(http, owner)
        upgrade = f"/socket.io/?EIO=4&transport=websocket&sid={sid}"
        async with ws_connect(other.ws_url + upgrade, compression=None) as ws:
            await ws.send("2probe")
            assert await asyncio.wait_for(ws.recv(), 5 * UNIT) == "3probe"
            for gateway in (other, owner):  # upgrading there; moved away from here
                with pytest.raises(InvalidStatus) as second:
                    await ws_connect(gateway.ws_url + upgrade)
                assert second.value.response.status_code == 400
            await ws.send("5")
            await ws.send("40/chat," + json.dumps({"token": make_token("upg")}))
            reply = await asyncio.wait_for(ws.recv(), 5 * UNIT)
            assert isinstance(reply, str) and reply.startswith('40/chat,{"sid":')
            async with http.get(polling_url(owner, sid=sid)) as response:
                assert response.status == 400  # no HTTP for an upgraded session
