"""Polling with no sticky sessions: real clients reach two gateways through a round-robin TCP
balancer, so the requests of one session land on both gateways and the non-owner forwards
them over NATS; the owner's death ends in a reconnect that recovers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import socketio

from devcluster.tcpproxy import SwitchProxy
from tests.support.jsclient import JsClients
from tests.support.processes import Service
from tests.support.timing import UNIT
from tests.support.tokens import make_token

pytestmark = pytest.mark.integration

RECONNECT = {"reconnection": True, "reconnectionDelay": 100, "reconnectionDelayMax": 300}


@pytest.fixture
async def balanced(start_gateway: Callable[..., Service]
                   ) -> AsyncIterator[tuple[SwitchProxy, list[Service]]]:
    gateways = [start_gateway(), start_gateway()]
    proxy = await SwitchProxy([("127.0.0.1", g.port) for g in gateways]).start()
    try:
        yield proxy, gateways
    finally:
        await proxy.stop()


async def exchange(js: JsClients, a: str, b: str, room: str, count: int) -> None:
    """Both clients in ``room``; each sends ``count``; each gets all ``2 * count`` once, in
    the order the log gave them."""
    for client in (a, b):
        assert (await js.call(client, "room:join", {"room": room}))["ok"] is True
    seqs: dict[str, list[int]] = {}
    run = uuid.uuid4().hex[:8]  # the room log outlives a test: ids must not repeat
    for n in range(count):
        for client in (a, b):
            ack = await js.call(client, "message:send", {"room": room, "text": f"{client}{n}",
                                                         "id": f"{client}-{run}-{n}"})
            assert ack["ok"] is True, ack
            seqs.setdefault("sent", []).append(ack["seq"])
    for client in (a, b):
        got = [(await js.expect_event(client, "message:received"))[0]["seq"]
               for _ in range(2 * count)]
        assert got == sorted(seqs["sent"])


async def test_polling_only_client_through_the_balancer(
    js: JsClients, balanced: tuple[SwitchProxy, list[Service]]
) -> None:
    proxy, gateways = balanced
    reply = await js.connect("pol", proxy.url, "/chat", make_token("pol"),
                             transports=["polling"])
    assert reply["type"] == "connect" and reply["transport"] == "polling"
    await js.connect("web", gateways[1].url, "/chat", make_token("web"))
    await exchange(js, "pol", "web", "room:bal-1", 10)
    blob = bytes(range(256))
    ack = await js.call("pol", "message:send", {"room": "room:bal-1", "text": "",
                                                 "id": "bin", "attachment": blob})
    assert ack["ok"] is True
    message, _ = await js.expect_event("web", "message:received")
    assert message["attachment"] == blob


@pytest.mark.parametrize("options", [{}, {"rememberUpgrade": True}])
async def test_default_options_through_the_balancer(
    js: JsClients, balanced: tuple[SwitchProxy, list[Service]], options: dict[str, Any]
) -> None:
    """Whether the upgrade lands on the owner (it upgrades) or not (it keeps polling), the
    session goes on without a gap."""
    proxy, gateways = balanced
    reply = await js.connect("dflt", proxy.url, "/chat", make_token("dflt"),
                             transports=["polling", "websocket"], **options)
    assert reply["type"] == "connect"
    await js.connect("peer", gateways[0].url, "/chat", make_token("peer"))
    await exchange(js, "dflt", "peer", f"room:bal-2-{len(options)}", 10)


async def test_python_socketio_defaults_through_the_balancer(
    balanced: tuple[SwitchProxy, list[Service]]
) -> None:
    proxy, _ = balanced
    client = socketio.AsyncClient(reconnection=False)
    try:
        await client.connect(proxy.url, namespaces=["/chat"],
                             auth={"token": make_token("pyb")}, wait_timeout=5 * UNIT)
        assert (await client.call("room:join", {"room": "room:bal-py"}, namespace="/chat",
                                  timeout=5 * UNIT))["ok"] is True
        run = uuid.uuid4().hex[:8]
        for n in range(5):
            ack = await client.call("message:send", {"room": "room:bal-py", "text": "x",
                                                     "id": f"p-{run}-{n}"}, namespace="/chat",
                                    timeout=5 * UNIT)
            assert ack["ok"] is True, ack
    finally:
        await client.disconnect()


async def test_the_owner_sigkilled_the_client_recovers_on_the_other(
    js: JsClients, balanced: tuple[SwitchProxy, list[Service]]
) -> None:
    proxy, gateways = balanced
    reply = await js.connect("rec", proxy.url, "/chat", make_token("rec"),
                             transports=["polling"], **RECONNECT)
    assert reply["type"] == "connect"
    await js.connect("snd", gateways[1].url, "/chat", make_token("snd"))
    for client in ("rec", "snd"):
        await js.call(client, "room:join", {"room": "room:bal-rec"})
    run = uuid.uuid4().hex[:8]
    await js.call("snd", "message:send", {"room": "room:bal-rec", "text": "before",
                                          "id": f"b-{run}"})
    assert (await js.expect_event("rec", "message:received"))[0]["text"] == "before"
    owner = owner_of_session(reply["engine"], gateways)
    survivor = next(g for g in gateways if g is not owner)
    proxy.switch([("127.0.0.1", survivor.port)])
    owner.kill()
    if survivor is not gateways[1]:
        await js.connect("snd2", survivor.url, "/chat", make_token("snd2"))
        await js.call("snd2", "room:join", {"room": "room:bal-rec"})
        sender = "snd2"
    else:
        sender = "snd"
    sent = []
    for n in range(5):
        ack = await js.call(sender, "message:send", {"room": "room:bal-rec",
                                                     "text": f"after{n}", "id": f"a-{run}-{n}"})
        sent.append(f"after{n}")
        assert ack["ok"] is True
    again = await js.expect("rec", {"connect"}, within=15 * UNIT)
    assert again["recovered"] is True
    texts = []
    while len(texts) < len(sent):
        message = (await js.expect_event("rec", "message:received", within=10 * UNIT))[0]
        texts.append(message["text"])
    assert texts == sent


def owner_of_session(engine_sid: str, gateways: list[Service]) -> Service:
    """The gateway holding an Engine.IO session, as its sid says."""
    owner = engine_sid.rpartition("~")[2]
    return next(g for g in gateways if g.env["SB_INSTANCE_ID"] == owner)
