"""The durable namespaces' store (``gateway/durable.py``) on the in-memory bus with a fake
recovery store: what it saves, what it hands back to the core (a recovered socket's ids and
rooms, a history page, a typed join failure) and that it never writes the socket's state,
which is the core's."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from gateway.actions import JoinFailure, NamespaceSocket, Recovered, Restore
from gateway.broker import BrokerUnavailable
from gateway.durable import DurableSockets, JoinFailed
from gateway.fanout import Fanout
from gateway.memory_broker import MemoryBroker, MemoryBus
from gateway.recovery import RecoveryRecord
from shared.jwtauth import Identity
from shared.metrics import GatewayMetrics
from tests.support.members import body, member, texts

CHAT = "/chat"
ALICE = Identity("alice", None, ("room:*",), 0.0)


class FakeStore:
    """What :class:`DurableSockets` needs of a :class:`~gateway.recovery_store.RecoveryStore`."""

    def __init__(self) -> None:
        self.records: dict[str, RecoveryRecord] = {}
        self.later: dict[str, RecoveryRecord] = {}
        self.deleted: list[str] = []

    async def put(self, pid: str, record: RecoveryRecord) -> None:
        self.records[pid] = RecoveryRecord(record.user, record.nsp, record.sid,
                                           dict(record.rooms), record.until)

    def put_later(self, pid: str, record: RecoveryRecord) -> None:
        self.later[pid] = record

    async def get(self, nsp: str, pid: str) -> RecoveryRecord | None:
        return self.records.get(pid)

    async def delete(self, nsp: str, pid: str) -> None:
        self.deleted.append(pid)

    def close(self) -> None:
        pass


@dataclass
class World:
    durable: DurableSockets
    store: FakeStore
    other: MemoryBroker  # another gateway, publishing
    fanout: Fanout

    def socket(self, pid: str = "new-pid", sid: str = "new-sid") -> NamespaceSocket:
        return NamespaceSocket(CHAT, sid, ALICE, {"user:alice"}, pid=pid, durable=True)

    async def publish(self, room: str, text: str) -> int:
        result = await self.other.publish(CHAT, room, body(room, text), msg_id=f"id-{text}",
                                          logged=True)
        return result.seq or 0


@pytest.fixture
async def world() -> AsyncIterator[World]:
    bus = MemoryBus(frozenset({CHAT}))
    fanout = Fanout(MemoryBroker(bus), GatewayMetrics(CollectorRegistry()), batch=8,
                    durable=frozenset({CHAT}))
    store = FakeStore()
    durable = DurableSockets(fanout, cast(Any, store), GatewayMetrics(CollectorRegistry()),
                             budget=1 << 20, lease_s=3600.0, window_s=60.0)
    try:
        yield World(durable, store, MemoryBroker(bus), fanout)
    finally:
        await durable.close()
        tasks = [feed._task for feed in fanout._feeds.values() if feed._task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_fresh_socket_is_saved_with_its_join_positions(world: World) -> None:
    socket = world.socket()

    assert await world.durable.open(socket, member(), None) is None

    saved = world.store.records["new-pid"]
    assert (saved.user, saved.sid, saved.rooms) == ("alice", "new-sid", {"user:alice": 0})
    assert saved.until > time.time()


async def test_a_recovered_socket_is_handed_back_to_the_core_with_its_replay(
        world: World) -> None:
    await world.publish("room:a", "before")
    world.store.records["old-pid"] = RecoveryRecord(
        "alice", CHAT, "old-sid", {"user:alice": 0, "room:a": 0}, time.time() + 60)
    socket, m = world.socket(), member()

    resumed = await world.durable.open(socket, m, Restore("old-pid", None))

    assert resumed is not None
    assert resumed.recovered == Recovered("old-pid", "old-sid",
                                          frozenset({"user:alice", "room:a"}))
    assert texts(m) == []  # the core's CONNECT reply goes first
    assert (socket.pid, socket.sid, socket.rooms) == ("new-pid", "new-sid", {"user:alice"})
    assert "old-pid" in world.store.records  # saved before the CONNECT reply

    await world.publish("room:a", "during")
    await asyncio.sleep(0.05)
    assert texts(m) == []  # held behind the replay

    world.durable.resume(m, resumed)

    assert texts(m) == ["before", "during"]


async def test_a_recovery_whose_record_cannot_be_saved_leaves_its_rooms(world: World) -> None:
    world.store.records["old-pid"] = RecoveryRecord(
        "alice", CHAT, "old-sid", {"user:alice": 0, "room:a": 0}, time.time() + 60)
    put = world.store.put

    async def unavailable(pid: str, record: RecoveryRecord) -> None:
        if pid == "old-pid":
            raise BrokerUnavailable("down")
        await put(pid, record)

    world.store.put = unavailable  # type: ignore[method-assign]
    socket, m = world.socket(), member()

    assert await world.durable.open(socket, m, Restore("old-pid", None)) is None

    assert m.hold is None
    assert world.store.records["new-pid"].rooms == {"user:alice": 0}  # a fresh session
    await world.publish("room:a", "after")
    await asyncio.sleep(0.05)
    assert texts(m) == []  # not left in room:a


@pytest.mark.parametrize("record", [
    RecoveryRecord("mallory", CHAT, "old-sid", {"user:mallory": 0}, 1e12),
    RecoveryRecord("alice", CHAT, "old-sid", {"user:alice": 0}, 1.0),  # lapsed
], ids=["another user", "lapsed"])
async def test_a_record_not_to_recover_gives_a_fresh_socket(world: World,
                                                            record: RecoveryRecord) -> None:
    world.store.records["old-pid"] = record

    assert await world.durable.open(world.socket(), member(), Restore("old-pid", None)) is None
    assert world.store.records["new-pid"].sid == "new-sid"


async def test_join_with_since_replays_first_and_leaves_the_rooms_to_the_core(
        world: World) -> None:
    socket, m = world.socket(), member()
    await world.durable.open(socket, m, None)
    await world.publish("room:a", "one")
    await world.publish("room:a", "two")

    await world.durable.join(socket, m, "room:a", 0)

    assert texts(m) == ["one", "two"]
    assert "room:a" not in socket.rooms  # the core adds it once the join is acked
    assert world.store.records["new-pid"].rooms["room:a"] == 0


async def test_a_backlog_over_the_budget_is_a_typed_join_failure(world: World) -> None:
    world.durable = DurableSockets(world.fanout, cast(Any, world.store),
                                   GatewayMetrics(CollectorRegistry()), budget=10,
                                   lease_s=3600.0, window_s=60.0)
    socket, m = world.socket(), member()
    await world.durable.open(socket, m, None)
    await world.publish("room:a", "too long for ten bytes")

    with pytest.raises(JoinFailed) as failed:
        await world.durable.join(socket, m, "room:a", 0)

    assert failed.value.why is JoinFailure.BACKLOG_TOO_LARGE
    assert texts(m) == []


async def test_history_is_the_logs_page(world: World) -> None:
    first = await world.publish("room:a", "one")
    second = await world.publish("room:a", "two")

    page = await world.durable.history(CHAT, "room:a", None, None, 10)

    assert page is not None and page.complete
    assert [(seq, prev) for seq, prev, _ in page.messages] == [(first, 0), (second, first)]


async def test_a_transport_close_keeps_the_record_and_a_disconnect_ends_it(
        world: World) -> None:
    kept, ended = world.socket("p1", "s1"), world.socket("p2", "s2")
    await world.durable.open(kept, member(), None)
    await world.durable.open(ended, member(), None)

    await world.durable.closed(kept, final=False)
    await world.durable.closed(ended, final=True)

    assert world.store.later["p1"].until <= time.time() + 60
    assert world.store.deleted == ["p2"]
