"""Protection at the edge with real sockets: operator events with schemas and sanitising,
abuse disconnects, slow consumers."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.jsclient import JsClients
from tests.support.processes import Service
from tests.support.tokens import make_token

pytestmark = pytest.mark.integration

EVENTS = Path(__file__).resolve().parents[1] / "fixtures" / "events"



async def test_operator_event_is_validated_sanitised_and_relayed(
    js: JsClients, start_gateway: Callable[..., Service]
) -> None:
    gateway = start_gateway(SB_EVENTS_DIR=str(EVENTS))
    for name in ("voter", "watcher"):
        await js.connect(name, gateway.url, "/chat", make_token(name))
        await js.call(name, "room:join", {"room": "room:poll"})
    ack = await js.call("voter", "poll:vote", {
        "room": "room:poll", "choice": "b\u202e",
        "note": '<b onclick="steal()">yes</b><script>alert(1)</script>'
                '<img src=x onerror=alert(1)><a href="javascript:go()">x</a>'})
    assert ack == {"ok": True}
    (vote,) = await js.expect_event("watcher", "poll:vote")
    assert vote["from"] == "voter" and vote["choice"] == "b"
    note = vote["note"]
    assert "<b>yes</b>" in note
    for hostile in ("onclick", "<script", "onerror", "javascript:"):
        assert hostile not in note
    bad = await js.call("voter", "poll:vote", {"room": "room:poll", "choice": 7})
    assert bad["error"]["code"] == "bad_request"
    unknown = await js.call("voter", "poll:nope", {"room": "room:poll"})
    assert unknown["error"]["code"] == "unknown_event"


async def test_a_client_that_keeps_flooding_is_disconnected_for_good(
    js: JsClients, start_gateway: Callable[..., Service]
) -> None:
    gateway = start_gateway(SB_REQUEST_RATE="2", SB_REQUEST_BURST="2")
    await js.connect("flood", gateway.url, "/chat", make_token("flood"), reconnection=True)
    answers = []
    for n in range(30):
        try:
            answers.append(await js.call("flood", "room:join", {"room": f"room:f{n}"},
                                         within=1))
        except TimeoutError:
            break
    assert any(a.get("error", {}).get("code") == "rate_limited" for a in answers)
    assert any("retry_after_ms" in a.get("error", {}) for a in answers)
    gone = await js.expect("flood", {"disconnect"})
    assert gone["reason"] == "io server disconnect"  # terminal: socket.io-client stays away
    with pytest.raises(TimeoutError):
        await js.expect("flood", {"connect"}, within=1.5)


async def test_a_consumer_that_stops_reading_is_cut_and_the_room_flows_on(
    js: JsClients, start_gateway: Callable[..., Service]
) -> None:
    gateway = start_gateway(SB_SEND_BUDGET_BYTES="200000", SB_CHAT_RATE="10000",
                            SB_CHAT_BURST="10000")
    import websockets.asyncio.client as wsclient

    small = socket.socket()
    small.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel absorbs little
    small.connect(("127.0.0.1", gateway.port))
    stalled = await wsclient.connect(
        gateway.ws_url + "/socket.io/?EIO=4&transport=websocket&token=" + make_token("stalled"),
        compression=None, max_queue=1, sock=small)
    await stalled.recv()
    await stalled.send('40/chat,')
    await stalled.recv()
    await stalled.send('42/chat,1["room:join",{"room":"room:flood"}]')
    await stalled.recv()
    stalled.transport.pause_reading()  # stops reading: the kernel buffers fill, then ours
    try:
        for name in ("sender", "reader"):
            await js.connect(name, gateway.url, "/chat", make_token(name))
            await js.call(name, "room:join", {"room": "room:flood"})
        blob = "x" * 4000
        count, batch = 2500, 20  # 10 MB: past the server's socket buffer, then past the budget
        async with asyncio.timeout(120):
            for start in range(0, count, batch):
                # The reader keeps up (its backlog stays far under the budget); the stalled
                # socket's backlog only grows, so only it is cut.
                for n in range(start, start + batch):
                    await js.emit("sender", "message:send", {"room": "room:flood",
                                                             "text": blob, "id": f"f{n}"})
                for _ in range(batch):
                    await js.expect_event("reader", "message:received")
        metrics = await asyncio.to_thread(_metrics, gateway.url)
        assert 'switchboard_gateway_closes_total{code="4008"} 1.0' in metrics
    finally:
        stalled.transport.abort()
        small.close()


def _metrics(url: str) -> str:
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=5) as answer:
        return str(answer.read().decode())
