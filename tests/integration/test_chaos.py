"""Chaos, counting every message: a gateway SIGKILLed mid-stream, nats-server restarted under
load, a publisher retrying after a lost ack. Every client must end with every message of its
rooms exactly once and in room order."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from client import SwitchboardClient
from devcluster.natsserver import NatsServer
from devcluster.tcpproxy import SwitchProxy
from tests.support import processes
from tests.support.jsclient import JsClients
from tests.support.processes import Service
from tests.support.timing import UNIT
from tests.support.tokens import SECRET, make_token

pytestmark = pytest.mark.integration

RECONNECT = {"reconnection": True, "reconnectionDelay": 100, "reconnectionDelayMax": 500,
             "randomizationFactor": 0.5}
ROOMS = ("room:chaos-a", "room:chaos-b")



class Publisher:
    """Publishes numbered messages round-robin over ``ROOMS``; a failed or timed-out send is
    retried with the same id (what socket.io-client's ``retries`` or the SDK do)."""

    def __init__(self, js: JsClients, client: str, tag: str) -> None:
        self.js, self.client, self.tag = js, client, tag
        self.sent: dict[str, list[str]] = {room: [] for room in ROOMS}
        self.acks: dict[str, dict[str, Any]] = {}
        self._stop = asyncio.Event()

    async def run(self, interval: float) -> None:
        for n in itertools.count():
            if self._stop.is_set():
                return
            room = ROOMS[n % len(ROOMS)]
            text = f"{self.tag}-{n}"
            while True:
                try:
                    ack = await self.js.call(self.client, "message:send",
                                             {"room": room, "text": text, "id": text},
                                             within=2 * UNIT)
                except TimeoutError:
                    continue
                if ack.get("ok"):
                    break
                await asyncio.sleep(0.1)
            self.sent[room].append(text)
            self.acks[text] = ack
            await asyncio.sleep(interval)

    def stop(self) -> None:
        self._stop.set()


async def received_texts(js: JsClients, client: str, expected: dict[str, list[str]],
                         store: dict[str, list[Any]]) -> None:
    """Collect ``client``'s messages until every expected one arrived (or time runs out)."""
    total = sum(len(texts) for texts in expected.values())
    async with asyncio.timeout(20 * UNIT):
        while sum(len(v) for v in store.values()) < total:
            message, _ = await js.expect_event(client, "message:received")
            store.setdefault(message["room"], []).append(message)


def check_exactly_once_in_order(messages: dict[str, list[Any]],
                                expected: dict[str, list[str]]) -> None:
    for room, texts in expected.items():
        got = messages.get(room, [])
        seqs = [m["seq"] for m in got]
        assert seqs == sorted(set(seqs)), f"{room}: duplicated or out of order"
        for earlier, later in itertools.pairwise(got):
            assert later["prev"] == earlier["seq"], f"{room}: prev chain broken"
        assert [m["text"] for m in got] == texts, f"{room}: lost or reordered messages"


class SdkInbox:
    """What one Python SDK client delivered to the app."""

    def __init__(self, client: SwitchboardClient) -> None:
        self.client = client
        self.messages: dict[str, list[Any]] = {}
        client.on_message(lambda m: self.messages.setdefault(m["room"], []).append(m))

    async def wait_for(self, expected: dict[str, list[str]]) -> None:
        total = sum(len(texts) for texts in expected.values())
        async with asyncio.timeout(20 * UNIT):
            while sum(len(v) for v in self.messages.values()) < total:  # noqa: ASYNC110
                await asyncio.sleep(0.02)


async def test_sigkill_a_gateway_mid_stream(
    js: JsClients, start_gateway: Callable[..., Service], gateway_pair: list[Service]
) -> None:
    doomed, survivor = start_gateway(), gateway_pair[1]
    proxy = await SwitchProxy([("127.0.0.1", doomed.port)]).start()
    behind_proxy = [f"p{i}" for i in range(12)]
    direct = [f"d{i}" for i in range(6)]
    sdks = [SdkInbox(SwitchboardClient(proxy.url, make_token(f"sdk{i}"), namespaces=("/chat",),
                                       backoff_base=0.1))
            for i in range(4)]
    try:
        for inbox in sdks:
            await inbox.client.connect()
            for room in ROOMS:
                await inbox.client.join(room)
        for name in behind_proxy:
            assert (await js.connect(name, proxy.url, "/chat", make_token(name),
                                     **RECONNECT))["type"] == "connect"
        for name in [*direct, "pub"]:
            await js.connect(name, survivor.url, "/chat", make_token(name))
        for name in [*behind_proxy, *direct, "pub"]:
            for room in ROOMS:
                assert (await js.call(name, "room:join", {"room": room}))["ok"] is True
        publisher = Publisher(js, "pub", "k")
        task = asyncio.create_task(publisher.run(0.01))
        await asyncio.sleep(1.0 * UNIT)
        proxy.switch([("127.0.0.1", survivor.port)])
        doomed.kill()
        await asyncio.sleep(1.5 * UNIT)
        publisher.stop()
        await task

        for name in [*behind_proxy, *direct]:
            store: dict[str, list[Any]] = {}
            await received_texts(js, name, publisher.sent, store)
            check_exactly_once_in_order(store, publisher.sent)
        for name in behind_proxy:
            reconnect = await js.expect(name, {"connect"}, within=5 * UNIT)
            assert reconnect["recovered"] is True, name
        for name in [*behind_proxy, *direct]:
            leftovers = [m for m in js.pending(name) if m["type"] == "event"]
            assert leftovers == [], name
        for inbox in sdks:
            await inbox.wait_for(publisher.sent)
            check_exactly_once_in_order(inbox.messages, publisher.sent)
            counters = inbox.client.counters
            assert counters.recoveries >= 1
            assert counters.duplicates_dropped == 0  # the server sent none: nothing to drop
    finally:
        for inbox in sdks:
            await inbox.client.close()
        await proxy.stop()


async def test_nats_server_restart_under_load(
    js: JsClients, tmp_path: Path
) -> None:
    nats = NatsServer(jetstream=True)
    nats.start()
    gateways: list[Service] = []
    try:
        for _ in range(2):
            gateways.append(processes.gateway(nats.url, SECRET).start(tmp_path))
        members = [f"m{i}" for i in range(8)]
        for i, name in enumerate([*members, "pub"]):
            await js.connect(name, gateways[i % 2].url, "/chat", make_token(name), **RECONNECT)
            for room in ROOMS:
                assert (await js.call(name, "room:join", {"room": room}))["ok"] is True
        publisher = Publisher(js, "pub", "n")
        task = asyncio.create_task(publisher.run(0.01))
        await asyncio.sleep(0.8 * UNIT)
        nats.kill()
        await asyncio.sleep(0.5 * UNIT)
        nats.start()
        await asyncio.sleep(1.5 * UNIT)
        publisher.stop()
        await task
        for name in members:
            store: dict[str, list[Any]] = {}
            await received_texts(js, name, publisher.sent, store)
            check_exactly_once_in_order(store, publisher.sent)
    finally:
        for gateway in gateways:
            gateway.stop()
        nats.stop()


async def test_retry_after_a_lost_ack_is_stored_once(
    js: JsClients, gateway_pair: list[Service]
) -> None:
    one, two = gateway_pair
    await js.connect("sender", one.url, "/chat", make_token("sender"))
    await js.connect("reader", two.url, "/chat", make_token("reader"))
    for name in ("sender", "reader"):
        await js.call(name, "room:join", {"room": "room:retry"})
    payload = {"room": "room:retry", "text": "once", "id": "retry-1"}
    first = await js.call("sender", "message:send", payload)
    second = await js.call("sender", "message:send", payload)
    assert first["duplicate"] is False and second["duplicate"] is True
    assert second["seq"] == first["seq"]
    other = await js.call("sender", "message:send",
                          {"room": "room:retry", "text": "next", "id": "retry-2"})
    texts = []
    for _ in range(2):
        message, _ = await js.expect_event("reader", "message:received")
        texts.append(message["text"])
    assert texts == ["once", "next"]
    assert other["seq"] > first["seq"]
    with contextlib.suppress(TimeoutError):
        extra = await js.expect_event("reader", "message:received", within=0.3)
        pytest.fail(f"duplicate delivered: {extra}")
