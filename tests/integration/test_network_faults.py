"""Real network faults under real clients: socket.io-client and the Python SDK run in a network
namespace of their own, behind a veth pair to the gateways on the host; the link goes silent
2 s every 15 s (a DROP rule, then the link pulled), 10 % of packets are dropped all along and
some clients go through a delaying relay that resets its connections. Every message must
arrive exactly once and in order; the heartbeat closes (4000) and recoveries are counted.

Root only (namespaces, veth, iptables/nft); skipped with the reason otherwise. The 60 s soak
always runs; ``SB_SOAK=2m`` or ``SB_SOAK=10m`` (comma-separated, or ``all``) adds the longer
profiles. ``pytest -s`` prints each soak's counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from devcluster.natsserver import NatsServer
from tests.netfault import clients, netns
from tests.netfault.faults import FaultPlan
from tests.netfault.firewall import Rules, firewall
from tests.netfault.netns import Namespace
from tests.netfault.relay import DelayRelay
from tests.netfault.servers import start_gateways
from tests.netfault.soak import SDK_OPTS, SoakReport, layout, run_soak
from tests.netfault.traffic import Publisher, Receiver, problems
from tests.support.jsclient import JsClients
from tests.support.processes import Service
from tests.support.timing import UNIT
from tests.support.tokens import make_token

pytestmark = pytest.mark.integration
needs_root = pytest.mark.skipif(netns.unavailable() is not None,
                                reason=f"network-fault harness {netns.unavailable()}")

PROFILES = {"60s": 60.0, "2m": 120.0, "10m": 600.0}
OPTED_IN = {p.strip() for p in os.environ.get("SB_SOAK", "").split(",") if p.strip()}


@pytest.fixture
def ns() -> Iterator[Namespace]:
    space = Namespace.create()
    try:
        yield space
    finally:
        space.delete()
        assert not space.exists()


@pytest.fixture(params=["iptables", "nft"])
def rules(request: pytest.FixtureRequest, ns: Namespace) -> Rules:
    if shutil.which(request.param) is None:
        pytest.skip(f"{request.param} is not installed")
    return firewall(ns, prefer=request.param)


def connects(ns: Namespace, port: int, within: float = 1.0) -> bool:
    """Whether a TCP connect from inside the namespace to the host end succeeds."""
    probe = (f"import socket; socket.create_connection(({ns.host_ip!r}, {port}), "
             f"timeout={within}).close()")
    done = subprocess.run(ns.exec_argv(sys.executable, "-c", probe), capture_output=True,
                          timeout=15, check=False)
    return done.returncode == 0


async def listener(host: str) -> asyncio.Server:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(echo, host, 0)


@needs_root
async def test_silence_link_down_and_drops_come_and_go(ns: Namespace, rules: Rules) -> None:
    server = await listener(ns.host_ip)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await asyncio.to_thread(connects, ns, port)
        rules.silence()
        assert not await asyncio.to_thread(connects, ns, port)
        rules.unsilence()
        assert await asyncio.to_thread(connects, ns, port)
        ns.link_down()
        assert not await asyncio.to_thread(connects, ns, port)
        ns.link_up()
        assert await asyncio.to_thread(connects, ns, port, 5.0)
        rules.thin(0.1)
        assert "random" in rules.listing()
        rules.lift()
        assert "drop" not in rules.listing().lower()
    finally:
        server.close()
        await server.wait_closed()


@needs_root
def test_a_deleted_namespace_leaves_no_link_behind() -> None:
    space = Namespace.create()
    assert space.exists() and space.host_ip in netns.run("ip", "-4", "addr", "show")
    space.delete()
    assert not space.exists()
    assert space.host_if not in netns.run("ip", "link", "show")


async def test_relay_keeps_order_through_its_delay_and_cuts() -> None:
    server = await listener("127.0.0.1")
    upstream = ("127.0.0.1", server.sockets[0].getsockname()[1])
    relay = await DelayRelay("127.0.0.1", upstream, delay=0.02, jitter=0.05).start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        for n in range(50):
            writer.write(f"{n};".encode())
        got = b""
        while got.count(b";") < 50:
            got += await asyncio.wait_for(reader.read(65536), 5)
        assert got.decode().split(";")[:-1] == [str(n) for n in range(50)]
        relay.cut()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        relay.refuse = 1.0
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        assert relay.refused == 1
    finally:
        await relay.stop()
        server.close()
        await server.wait_closed()


@pytest.fixture
def gateways(nats_server: NatsServer, ns: Namespace, service_logs: Path) -> Iterator[list[Service]]:
    started = start_gateways(nats_server.url, ns.host_ip, service_logs)
    try:
        yield started
    finally:
        for service in started:
            service.stop()


@pytest.fixture
async def relays(ns: Namespace, gateways: list[Service]) -> AsyncIterator[list[DelayRelay]]:
    made = [await DelayRelay(ns.host_ip, (ns.host_ip, g.port), delay=0.02, jitter=0.03).start()
            for g in gateways]
    try:
        yield made
    finally:
        for relay in made:
            await relay.stop()


@pytest.fixture
async def processes(ns: Namespace) -> AsyncIterator[list[JsClients]]:
    """socket.io-client on the host, socket.io-client and the SDK in the namespace."""
    started = [await JsClients.start()]
    try:
        started.append(await clients.node_inside(ns))
        started.append(await clients.sdk_inside(ns))
        yield started
    finally:
        for js in started:
            await js.stop()


def soak_profile(name: str) -> object:
    """The 60 s soak always runs; the longer ones when ``SB_SOAK`` names them."""
    opted_in = name == "60s" or bool(OPTED_IN & {name, "all"})
    return pytest.param(name, marks=pytest.mark.skipif(
        not opted_in, reason=f"opt-in soak profile: run with SB_SOAK={name}"))


@needs_root
@pytest.mark.parametrize("profile", [soak_profile(name) for name in PROFILES])
async def test_soak_delivers_every_message_once_in_order(
    profile: str, ns: Namespace, gateways: list[Service], relays: list[DelayRelay],
    processes: list[JsClients],
) -> None:
    urls = [g.url for g in gateways]
    plan = FaultPlan(ns, firewall(ns), relays)
    cast = layout(*processes, urls, [r.url for r in relays])
    report: SoakReport = await run_soak(plan, cast, urls, PROFILES[profile])
    print(report.summary())
    assert report.problems == []
    assert set(report.delivered.values()) == {report.sent} and report.sent > 0
    assert report.gateways["closes_4000"] > 0, "the silences never failed a heartbeat"
    assert report.reconnects["socket.io-client recovered"] > 0 and report.sdk["recoveries"] > 0
    assert report.gateways["recovered"] > 0 and report.gateways["fresh"] == 0
    for kind in ("socket.io-client", "sdk"):
        assert report.reconnects[f"{kind} fresh"] == 0
        assert report.reconnects[f"{kind} recovered"] == report.reconnects[f"{kind} dropped"]


async def test_sdk_peer_answers_as_remote_mjs_does(gateway_pair: list[Service]) -> None:
    """The SDK behind the JSON-lines remote: connect, join, acked sends (a re-send with the
    same id is a duplicate), messages delivered once, refusals as ``{ok: false}``, counters."""
    room, msg_id = f"room:nf-peer-{secrets.token_hex(4)}", f"peer-{secrets.token_hex(4)}"
    peer = await clients.sdk_here()
    try:
        await peer.emit("nobody", "ping")
        failure = await peer.expect("nobody", {"failure"}, within=30 * UNIT)
        assert failure["message"] == "no client nobody"
        for name, gateway in (("pa", gateway_pair[0]), ("pb", gateway_pair[1])):
            report = await peer.connect(name, gateway.url, "/chat", make_token(name),
                                        sdk=SDK_OPTS)
            assert report["type"] == "connect" and report["recovered"] is False
            assert (await peer.call(name, "room:join", {"room": room}))["ok"]
        payload = {"room": room, "text": "hi", "id": msg_id}
        first = await peer.call("pa", "message:send", payload)
        again = await peer.call("pa", "message:send", payload)
        assert (first["ok"], first["duplicate"], again["duplicate"]) == (True, False, True)
        assert again["seq"] == first["seq"]
        [message] = await peer.expect_event("pb", "message:received")
        assert (message["id"], message["from"], message["seq"]) == (msg_id, "pa", first["seq"])
        refused = await peer.call("pa", "message:send", {**payload, "room": "room:nf-other"})
        assert refused["ok"] is False and refused["error"]["code"] == "forbidden"
        await peer.close("pb")
        counters = (await peer.expect("pb", {"counters"}))["counters"]
        assert counters["messages_delivered"] == 1 and counters["duplicates_dropped"] == 0
    finally:
        await peer.stop()


def test_the_verdict_names_lost_duplicated_and_reordered_messages() -> None:
    sender = Publisher(None, "p", "run", ["room:x"], 0.1, 1.0)  # type: ignore[arg-type]
    sender.acked["room:x"] = ["run-p-0", "run-p-1", "run-p-2"]
    good = Receiver(None, "good")  # type: ignore[arg-type]
    good.messages["room:x"] = [{"id": f"run-p-{n}", "seq": n + 1, "prev": n} for n in range(3)]
    assert problems(good, [sender]) == []
    bad = Receiver(None, "bad")  # type: ignore[arg-type]
    m0, _, m2 = good.messages["room:x"]
    bad.messages["room:x"] = [m0, m2, m0]
    found = problems(bad, [sender])
    assert "bad room:x: 1 missing, 1 duplicated, 0 unexpected of 3" in found
    assert "bad room:x: 2 seq/prev breaks" in found
    assert "bad room:x: p's messages out of order" in found


def test_a_receiver_is_connected_when_its_last_report_was_a_connect() -> None:
    """socket.io-client reports a disconnect without a connect when a reconnect attempt's
    Engine.IO session dies before the namespace CONNECT is answered: what counts is the
    last report, and a drop is a disconnect of a connected socket, not every disconnect."""
    receiver = Receiver(None, "j")  # type: ignore[arg-type]
    outage = [{"type": "disconnect", "reason": "ping timeout"},
              {"type": "connect_error", "message": "websocket error"},
              {"type": "disconnect", "reason": "ping timeout"}]
    for report in outage:
        receiver.note(report)
        assert not receiver.connected()
    receiver.note({"type": "connect", "recovered": True})
    assert receiver.connected()
    receiver.note({"type": "disconnect", "reason": "transport close"})
    assert not receiver.connected()
    assert receiver.why[-1] == "disconnect: transport close"
    assert receiver.reconnects["socket.io-client disconnect"] == 3
    assert receiver.reconnects["socket.io-client dropped"] == 2  # the socket's own two drops
