"""Connection-state recovery with the unmodified socket.io-client: on the same gateway after
a transport drop, and on another gateway after the first was SIGKILLed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from devcluster.tcpproxy import SwitchProxy
from tests.support.event_cut_relay import EventCutRelay
from tests.support.jsclient import JsClients
from tests.support.processes import Service
from tests.support.tokens import make_token

pytestmark = pytest.mark.integration

RECONNECT = {"reconnection": True, "reconnectionDelay": 100, "reconnectionDelayMax": 200,
             "randomizationFactor": 0}



async def texts_until(js: JsClients, client: str, count: int) -> list[str]:
    texts = []
    for _ in range(count):
        message, offset = await js.expect_event(client, "message:received")
        assert isinstance(offset, str)
        texts.append(message["text"])
    return texts


async def test_recovers_missed_messages_after_a_transport_drop(
    js: JsClients, gateway_pair: list[Service]
) -> None:
    one, two = gateway_pair
    proxy = await SwitchProxy([("127.0.0.1", one.port)]).start()
    try:
        assert (await js.connect("alice", proxy.url, "/chat", make_token("alice"),
                                 **RECONNECT))["type"] == "connect"
        await js.connect("bob", two.url, "/chat", make_token("bob"))
        for client in ("alice", "bob"):
            await js.call(client, "room:join", {"room": "room:rec-1"})
        await js.call("bob", "message:send", {"room": "room:rec-1", "text": "m0", "id": "r0"})
        assert await texts_until(js, "alice", 1) == ["m0"]

        proxy.cut()
        await js.expect(alice := "alice", {"disconnect"})
        proxy.switch([("127.0.0.1", 1)])  # nothing listens: alice stays away for a moment
        for n in range(1, 4):
            await js.call("bob", "message:send", {"room": "room:rec-1", "text": f"m{n}",
                                                  "id": f"r{n}"})
        proxy.switch([("127.0.0.1", one.port)])
        reconnected = await js.expect(alice, {"connect"}, within=10)
        assert reconnected["recovered"] is True
        await js.call("bob", "message:send", {"room": "room:rec-1", "text": "m4", "id": "r4"})
        assert await texts_until(js, "alice", 4) == ["m1", "m2", "m3", "m4"]
    finally:
        await proxy.stop()


async def test_recovers_on_another_gateway_after_sigkill(
    js: JsClients, start_gateway: Callable[..., Service], gateway_pair: list[Service]
) -> None:
    doomed = start_gateway()
    survivor = gateway_pair[1]
    proxy = await SwitchProxy([("127.0.0.1", doomed.port)]).start()
    try:
        await js.connect("carol", proxy.url, "/chat", make_token("carol"), **RECONNECT)
        await js.connect("dave", survivor.url, "/chat", make_token("dave"))
        for client in ("carol", "dave"):
            await js.call(client, "room:join", {"room": "room:rec-kill"})
        await js.call("dave", "message:send", {"room": "room:rec-kill", "text": "k0",
                                               "id": "k0"})
        assert await texts_until(js, "carol", 1) == ["k0"]

        proxy.switch([("127.0.0.1", survivor.port)])
        doomed.kill()
        await js.expect("carol", {"disconnect"})
        for n in range(1, 4):
            await js.call("dave", "message:send", {"room": "room:rec-kill", "text": f"k{n}",
                                                   "id": f"k{n}"})
        reconnected = await js.expect("carol", {"connect"}, within=10)
        assert reconnected["recovered"] is True
        assert await texts_until(js, "carol", 3) == ["k1", "k2", "k3"]
        assert js.pending("carol") == []
    finally:
        await proxy.stop()


async def test_client_that_never_got_an_event_still_recovers(
    js: JsClients, gateway_pair: list[Service]
) -> None:
    """socket.io#4888: no offset on the reconnect; the session's join positions serve."""
    one, two = gateway_pair
    proxy = await SwitchProxy([("127.0.0.1", one.port)]).start()
    try:
        await js.connect("erin", proxy.url, "/chat", make_token("erin"), **RECONNECT)
        await js.connect("frank", two.url, "/chat", make_token("frank"))
        await js.call("erin", "room:join", {"room": "room:rec-quiet"})
        await js.call("frank", "room:join", {"room": "room:rec-quiet"})
        proxy.switch([("127.0.0.1", two.port)])
        proxy.cut()
        await js.expect("erin", {"disconnect"})
        await js.call("frank", "message:send", {"room": "room:rec-quiet", "text": "q1",
                                                "id": "q1"})
        reconnected = await js.expect("erin", {"connect"}, within=10)
        assert reconnected["recovered"] is True
        await js.call("frank", "message:send", {"room": "room:rec-quiet", "text": "q2",
                                                "id": "q2"})
        assert await texts_until(js, "erin", 2) == ["q1", "q2"]
    finally:
        await proxy.stop()


async def test_a_reconnect_attempt_cut_off_in_its_replay_leaves_nothing_twice(
    js: JsClients, gateway_pair: list[Service]
) -> None:
    """The network fails two messages into a recovery's replay. socket.io-client keeps what
    arrived before its CONNECT in a buffer a failed attempt does not empty, and moves its
    offset only for what it emitted: a replay written before the CONNECT reply and cut off
    there would reach the application twice, once from that buffer and once from the next
    attempt's replay. Written after the reply, what arrived was emitted and the offset says
    so, and the next attempt resumes after it."""
    one, two = gateway_pair
    relay = await EventCutRelay(one.port, "/chat").start()
    try:
        await js.connect("gina", relay.url, "/chat", make_token("gina"),
                         transports=["websocket"], **RECONNECT)
        await js.connect("hal", two.url, "/chat", make_token("hal"))
        for client in ("gina", "hal"):
            await js.call(client, "room:join", {"room": "room:rec-cut"})
        await js.call("hal", "message:send", {"room": "room:rec-cut", "text": "c0", "id": "c0"})
        assert await texts_until(js, "gina", 1) == ["c0"]

        relay.switch([("127.0.0.1", 1)])  # nothing listens: gina stays away for a moment
        relay.cut()
        await js.expect("gina", {"disconnect"})
        for n in range(1, 6):
            await js.call("hal", "message:send", {"room": "room:rec-cut", "text": f"c{n}",
                                                  "id": f"c{n}"})
        relay.arm(2)
        relay.switch([("127.0.0.1", one.port)])
        await asyncio.wait_for(relay.cut_off.wait(), 10)
        reconnected = await js.expect("gina", {"connect"}, within=10)
        assert reconnected["recovered"] is True
        await js.call("hal", "message:send", {"room": "room:rec-cut", "text": "c6", "id": "c6"})

        assert await texts_until(js, "gina", 6) == [f"c{n}" for n in range(1, 7)]
        await asyncio.sleep(0.3)
        assert [m for m in js.pending("gina") if m["type"] == "event"] == []
        cut_attempt = [p for p in relay.forwarded if p.startswith((b"40/chat,", b"42/chat,"))]
        assert cut_attempt[0].startswith(b"40/chat,")  # the CONNECT reply led the replay
    finally:
        await relay.stop()
