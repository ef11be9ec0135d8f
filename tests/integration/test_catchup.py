"""Explicit catch-up for clients that keep their position: room:join {since}, room:history,
and the recovery window's end."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from devcluster.tcpproxy import SwitchProxy
from tests.support.jsclient import JsClients
from tests.support.processes import Service
from tests.support.timing import UNIT
from tests.support.tokens import make_token

pytestmark = pytest.mark.integration



async def publish(js: JsClients, client: str, room: str, texts: list[str]) -> list[int]:
    seqs = []
    for text in texts:
        ack = await js.call(client, "message:send", {"room": room, "text": text, "id": text})
        seqs.append(ack["seq"])
    return seqs


async def test_join_since_replays_before_the_ack_then_live(
    js: JsClients, gateway_pair: list[Service]
) -> None:
    one, two = gateway_pair
    room = "room:since"
    await js.connect("writer", one.url, "/chat", make_token("writer"))
    await js.call("writer", "room:join", {"room": room})
    seqs = await publish(js, "writer", room, ["s1", "s2", "s3", "s4"])

    await js.connect("reader", two.url, "/chat", make_token("reader"))
    ack = await js.call("reader", "room:join", {"room": room, "since": seqs[1]})
    assert ack == {"ok": True, "room": room}
    replayed = js.pending("reader")  # written before the ack, so already here
    messages = [r["args"][0] for r in replayed if r["type"] == "event"]
    assert [m["text"] for m in messages] == ["s3", "s4"]
    assert [(m["seq"], m["prev"]) for m in messages] == [(seqs[2], seqs[1]), (seqs[3], seqs[2])]
    await publish(js, "writer", room, ["s5"])
    message, _ = await js.expect_event("reader", "message:received")
    assert (message["text"], message["prev"]) == ("s5", seqs[3])


async def test_history_forward_and_backward(js: JsClients, gateway_pair: list[Service]) -> None:
    room = "room:hist"
    await js.connect("h", gateway_pair[0].url, "/chat", make_token("h"))
    await js.call("h", "room:join", {"room": room})
    seqs = await publish(js, "h", room, [f"h{n}" for n in range(6)])

    forward = await js.call("h", "room:history", {"room": room, "since": seqs[1], "limit": 3})
    assert forward["ok"] is True and forward["complete"] is True
    assert [m["text"] for m in forward["messages"]] == ["h2", "h3", "h4"]
    assert [m["prev"] for m in forward["messages"]] == [seqs[1], seqs[2], seqs[3]]

    rest = await js.call("h", "room:history", {"room": room, "since": seqs[4]})
    assert [m["text"] for m in rest["messages"]] == ["h5"] and rest["complete"] is True

    back = await js.call("h", "room:history", {"room": room, "before": seqs[4], "limit": 2})
    assert [m["text"] for m in back["messages"]] == ["h2", "h3"]
    assert back["messages"][0]["prev"] == seqs[1]

    bad = await js.call("h", "room:history", {"room": room, "since": 1, "before": 2})
    assert bad["error"]["code"] == "bad_request"


async def test_past_the_recovery_window_the_session_starts_fresh(
    js: JsClients, start_gateway: Callable[..., Service]
) -> None:
    gateway = start_gateway(SB_RECOVERY_WINDOW_S="1")
    proxy = await SwitchProxy([("127.0.0.1", gateway.port)]).start()
    try:
        await js.connect("late", proxy.url, "/chat", make_token("late"), reconnection=True,
                         reconnectionDelay=100, reconnectionDelayMax=100)
        await js.call("late", "room:join", {"room": "room:late"})
        await publish(js, "late", "room:late", ["l1"])
        await js.expect_event("late", "message:received")
        proxy.switch([("127.0.0.1", 1)])
        proxy.cut()
        await js.expect("late", {"disconnect"})
        await asyncio.sleep(3 * UNIT)  # bucket TTL is the window plus one lease (1 s)
        proxy.switch([("127.0.0.1", gateway.port)])
        reconnected = await js.expect("late", {"connect"}, within=10 * UNIT)
        assert reconnected["recovered"] is False
    finally:
        await proxy.stop()
