"""Presence end to end: real NATS, real gateways, real presence replicas, python-socketio
clients. Each test runs on its own subject prefix, so its work queue, buckets and rooms are
its own; timings are short (grace 1 s, typing TTL 1 s) and every wait is bounded."""

from __future__ import annotations

import asyncio
import itertools
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import socketio

from devcluster.natsserver import NatsServer
from devcluster.tcpproxy import SwitchProxy
from shared.subjects import encode_token
from tests.support import processes
from tests.support.jsclient import JsClients
from tests.support.processes import Service
from tests.support.timing import UNIT
from tests.support.tokens import SECRET, make_token

pytestmark = pytest.mark.integration

GRACE = 1.0
_prefixes = itertools.count(1)


class Cluster:
    """Gateways and presence replicas sharing one prefix; all stopped by PID at the end."""

    def __init__(self, nats_url: str, logs: Path) -> None:
        self.prefix = f"pres{next(_prefixes)}"
        self.nats_url = nats_url
        self.logs = logs
        self.started: list[Service] = []

    def gateway(self) -> Service:
        service = processes.gateway(self.nats_url, SECRET, SB_SUBJECT_PREFIX=self.prefix,
                                    SB_GATEWAY_TTL_S="1")
        self.started.append(service)
        return service.start(self.logs)

    def replica(self) -> Service:
        service = processes.presence(self.nats_url, SB_SUBJECT_PREFIX=self.prefix,
                                     SB_GATEWAY_TTL_S="1", SB_PRESENCE_GRACE_S=str(GRACE),
                                     SB_TYPING_TTL_S="2.5", SB_PRESENCE_REPLICA_TTL_S="1")
        self.started.append(service)
        return service.start(self.logs)

    def stop(self) -> None:
        for service in self.started:
            service.stop()


@pytest.fixture
def cluster(nats_server: NatsServer, service_logs: Path) -> Iterator[Cluster]:
    made = Cluster(nats_server.url, service_logs)
    try:
        yield made
    finally:
        made.stop()


class User:
    """One python-socketio connection on ``/chat`` and what it heard."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.client = socketio.AsyncClient(reconnection=False)
        self.heard: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.client.on("*", self._on_event, namespace="/chat")

    async def _on_event(self, event: str, *args: Any) -> None:
        if event in ("presence:update", "typing:start", "typing:stop"):
            self.heard.put_nowait((event, args[0]))

    async def connect(self, gateway: Service) -> User:
        await self.client.connect(gateway.url, transports=["websocket"], namespaces=["/chat"],
                                  auth={"token": make_token(self.name), "recovery": False},
                                  wait_timeout=5)
        return self

    async def call(self, event: str, data: dict[str, Any]) -> Any:
        return await self.client.call(event, data, namespace="/chat", timeout=5 * UNIT)

    async def join(self, room: str) -> None:
        assert await self.call("room:join", {"room": room}) == {"ok": True, "room": room}

    async def expect(self, event: str, data: dict[str, Any], within: float = 5.0) -> None:
        """The next presence/typing event that concerns someone else must be this one."""
        async with asyncio.timeout(within * UNIT):
            while True:
                got = await self.heard.get()
                if got[1].get("user") == self.name:
                    continue
                assert got == (event, data)
                return

    async def arrival(self, room: str, user: str) -> None:
        """A user's first room: ``joined`` there and ``online`` (from two owners, any order)."""
        await self.expect_all(("presence:update", {"room": room, "user": user,
                                                   "status": "joined"}),
                              ("presence:update", {"user": user, "status": "online"}))

    async def expect_all(self, *wanted: tuple[str, dict[str, Any]]) -> None:
        """The next events about others are exactly these, in any order."""
        got: list[tuple[str, dict[str, Any]]] = []
        async with asyncio.timeout(5 * UNIT):
            while len(got) < len(wanted):
                event = await self.heard.get()
                if event[1].get("user") != self.name:
                    got.append(event)
        assert sorted(got, key=str) == sorted(wanted, key=str)

    async def quiet(self, seconds: float) -> list[tuple[str, dict[str, Any]]]:
        """Everything about others heard within ``seconds``."""
        await asyncio.sleep(seconds * UNIT)
        heard = []
        while not self.heard.empty():
            got = self.heard.get_nowait()
            if got[1].get("user") != self.name:
                heard.append(got)
        return heard

    async def close(self) -> None:
        if self.client.connected:
            await self.client.disconnect()


@pytest.fixture
async def users() -> AsyncIterator[Callable[[str], User]]:
    made: list[User] = []

    def make(name: str) -> User:
        made.append(User(name))
        return made[-1]

    try:
        yield make
    finally:
        for user in made:
            await user.close()


async def members(user: User, room: str, count: int) -> list[str]:
    """``room:presence`` once it reports ``count`` members (the join travels through NATS)."""
    async with asyncio.timeout(5 * UNIT):
        while True:
            answer = await user.call("room:presence", {"room": room})
            assert answer["ok"] is True, answer
            if answer["count"] == count:
                return list(answer["users"])
            await asyncio.sleep(0.05)


async def test_two_users_on_two_gateways_see_each_other_join_type_and_leave(
    cluster: Cluster, users: Callable[[str], User]
) -> None:
    one, two = cluster.gateway(), cluster.gateway()
    cluster.replica()
    cluster.replica()
    room = "room:duo"
    alice = await users("alice").connect(one)
    bob = await users("bob").connect(two)
    await alice.join(room)
    await bob.join(room)
    await alice.arrival(room, "bob")
    assert await members(bob, room, 2) == ["alice", "bob"]

    for _ in range(5):  # a keystroke stream: one start, then one stop after the TTL
        assert await bob.call("typing:start", {"room": room}) == {"ok": True}
    await alice.expect("typing:start", {"room": room, "user": "bob"})
    await alice.expect("typing:stop", {"room": room, "user": "bob"})
    assert await bob.call("typing:start", {"room": room}) == {"ok": True}
    await alice.expect("typing:start", {"room": room, "user": "bob"})
    assert await bob.call("typing:stop", {"room": room}) == {"ok": True}
    await alice.expect("typing:stop", {"room": room, "user": "bob"})

    assert await bob.call("room:leave", {"room": room}) == {"ok": True}
    await alice.expect("presence:update", {"room": room, "user": "bob", "status": "left"})
    await bob.close()
    assert await alice.quiet(GRACE + 1) == []  # bob's rooms were empty: nobody to tell
    assert await members(alice, room, 1) == ["alice"]


async def test_a_user_who_closes_one_of_two_tabs_stays_online(
    cluster: Cluster, users: Callable[[str], User]
) -> None:
    one, two = cluster.gateway(), cluster.gateway()
    cluster.replica()
    room = "room:tabs"
    alice = await users("alice").connect(one)
    await alice.join(room)
    tab1 = await users("bob").connect(one)
    tab2 = await users("bob").connect(two)
    await tab1.join(room)
    await tab2.join(room)
    await alice.arrival(room, "bob")

    await tab1.close()
    assert await alice.quiet(GRACE + 1.5) == []
    assert await members(alice, room, 2) == ["alice", "bob"]

    await tab2.close()
    heard = await alice.quiet(GRACE + 1.5)
    assert sorted(heard, key=str) == sorted([
        ("presence:update", {"room": room, "user": "bob", "status": "left"}),
        ("presence:update", {"user": "bob", "status": "offline"}),
    ], key=str)


async def test_a_killed_gateways_users_go_offline_unless_they_reconnected_elsewhere(
    cluster: Cluster, users: Callable[[str], User]
) -> None:
    stays, doomed = cluster.gateway(), cluster.gateway()
    cluster.replica()
    cluster.replica()
    room = "room:crash"
    alice = await users("alice").connect(stays)
    await alice.join(room)
    carol = await users("carol").connect(doomed)
    dave = await users("dave").connect(doomed)
    await carol.join(room)
    await dave.join(room)
    assert await members(alice, room, 3) == ["alice", "carol", "dave"]
    await alice.quiet(0.2)

    doomed.kill()
    carol_again = await users("carol").connect(stays)  # carol's client moves at once
    await carol_again.join(room)

    heard = await alice.quiet(1 + GRACE + 2)  # liveness TTL, then the grace
    assert sorted(heard, key=str) == sorted([
        ("presence:update", {"room": room, "user": "dave", "status": "left"}),
        ("presence:update", {"user": "dave", "status": "offline"}),
    ], key=str)
    assert await members(alice, room, 2) == ["alice", "carol"]


async def test_killing_a_presence_replica_loses_no_update(
    cluster: Cluster, users: Callable[[str], User]
) -> None:
    gateway = cluster.gateway()
    victim = cluster.replica()
    survivor = cluster.replica()
    room = "room:failover"
    alice = await users("alice").connect(gateway)
    await alice.join(room)
    await members(alice, room, 1)

    victim.kill()
    names = [f"user{n}" for n in range(12)]
    for name in names:  # about half of these are the dead replica's to announce
        await (await users(name).connect(gateway)).join(room)

    expected = {("presence:update", (name, status)) for name in names
                for status in ("joined", "online")}
    got: list[tuple[str, tuple[str, str]]] = []
    async with asyncio.timeout(15 * UNIT):  # redelivery after the ack wait, liveness TTL
        while set(got) != expected:
            event, data = await alice.heard.get()
            if data.get("user") != "alice":
                got.append((event, (data["user"], data["status"])))
    assert await alice.quiet(2) == []
    assert sorted(got) == sorted(expected)  # each once
    assert await members(alice, room, 13) == sorted(["alice", *names])
    taken_over = await asyncio.to_thread(metric, survivor, "switchboard_presence_reannounced_total")
    assert taken_over > 0  # the dead replica's share was announced by the survivor


async def test_a_drained_gateways_users_who_move_within_the_grace_announce_nothing(
    cluster: Cluster, users: Callable[[str], User]
) -> None:
    stays, restarted = cluster.gateway(), cluster.gateway()
    cluster.replica()
    room = "room:deploy"
    alice = await users("alice").connect(stays)
    await alice.join(room)
    names = [f"mover{n}" for n in range(5)]
    for name in names:
        await (await users(name).connect(restarted)).join(room)
    assert await members(alice, room, 6) == sorted(["alice", *names])
    await alice.quiet(0.3)

    await asyncio.to_thread(restarted.stop)  # SIGTERM: drain with 1012, as a deploy does
    for name in names:  # each client reconnects to the other gateway and rejoins
        await (await users(name).connect(stays)).join(room)

    assert await alice.quiet(GRACE + 1.5) == []
    assert await members(alice, room, 6) == sorted(["alice", *names])


def metric(service: Service, name: str) -> float:
    with urllib.request.urlopen(service.url + "/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


async def test_a_gateway_restarted_at_once_under_its_id_closes_its_old_runs_sockets(
    cluster: Cluster, users: Callable[[str], User]
) -> None:
    stays, restarted = cluster.gateway(), cluster.gateway()
    cluster.replica()
    room = "room:reboot"
    alice = await users("alice").connect(stays)
    await alice.join(room)
    erin = await users("erin").connect(restarted)
    await erin.join(room)
    assert await members(alice, room, 2) == ["alice", "erin"]
    await alice.quiet(0.2)

    restarted.kill()  # back before its liveness key can lapse: only the new boot tells
    await asyncio.to_thread(restarted.start, cluster.logs)
    frank = await users("frank").connect(restarted)
    await frank.join(room)

    await alice.arrival(room, "frank")
    heard = await alice.quiet(GRACE + 1.5)
    assert sorted(heard, key=str) == sorted([
        ("presence:update", {"room": room, "user": "erin", "status": "left"}),
        ("presence:update", {"user": "erin", "status": "offline"}),
    ], key=str)
    assert await members(alice, room, 2) == ["alice", "frank"]


async def test_a_restarted_replica_keeps_the_state_and_announces_nobody_again(
    cluster: Cluster, users: Callable[[str], User]
) -> None:
    gateway = cluster.gateway()
    replica = cluster.replica()
    room = "room:restart"
    alice = await users("alice").connect(gateway)
    await alice.join(room)
    gina = await users("gina").connect(gateway)
    await gina.join(room)
    await alice.arrival(room, "gina")

    await asyncio.to_thread(replica.stop)
    await gina.close()  # while no replica runs: the work queue keeps the notice
    await asyncio.to_thread(replica.start, cluster.logs)

    assert await members(alice, room, 1) == ["alice"]  # after the grace, from the bucket
    heard = await alice.quiet(0.5)
    assert sorted(heard, key=str) == sorted([
        ("presence:update", {"room": room, "user": "gina", "status": "left"}),
        ("presence:update", {"user": "gina", "status": "offline"}),
    ], key=str)


async def test_a_gateway_whose_liveness_key_lapsed_gives_presence_its_sockets_back(
    cluster: Cluster, users: Callable[[str], User]
) -> None:
    gateway = cluster.gateway()
    replica = cluster.replica()
    room = "room:lapse"
    alice = await users("alice").connect(gateway)
    await alice.join(room)
    hana = await users("hana").connect(gateway)
    await hana.join(room)
    assert await members(alice, room, 2) == ["alice", "hana"]

    nc = await nats.connect(cluster.nats_url)
    try:  # what a long NATS stall does to a live gateway: its liveness key expires
        kv = await nc.jetstream().key_value(f"{cluster.prefix}-gateways")
        await kv.delete(encode_token(gateway.env["SB_INSTANCE_ID"]))
    finally:
        await nc.close()

    await asyncio.sleep((GRACE + 2) * UNIT)
    closed = await asyncio.to_thread(metric, replica, "switchboard_presence_gateways_down_total")
    assert closed == 1  # presence did close the gateway's sockets in between
    assert await members(alice, room, 2) == ["alice", "hana"]
    assert await hana.call("room:presence", {"room": room}) == {
        "ok": True, "room": room, "users": ["alice", "hana"], "count": 2, "truncated": False}


async def test_a_socket_recovered_on_its_own_gateway_stays_present(
    cluster: Cluster, users: Callable[[str], User], js: JsClients
) -> None:
    gateway = cluster.gateway()
    cluster.replica()
    room = "room:recover"
    alice = await users("alice").connect(gateway)
    await alice.join(room)
    proxy = await SwitchProxy([("127.0.0.1", gateway.port)]).start()
    try:
        await js.connect("ivan", proxy.url, "/chat", make_token("ivan"), reconnection=True,
                         reconnectionDelay=100, reconnectionDelayMax=200, randomizationFactor=0)
        await js.call("ivan", "room:join", {"room": room})
        await alice.arrival(room, "ivan")

        proxy.cut()  # the transport drops; socket.io-client recovers the same socket id
        await js.expect("ivan", {"disconnect"})
        assert (await js.expect("ivan", {"connect"}, within=10))["recovered"] is True

        assert await alice.quiet(GRACE + 1.5) == []
        assert await members(alice, room, 2) == ["alice", "ivan"]
    finally:
        await proxy.stop()
