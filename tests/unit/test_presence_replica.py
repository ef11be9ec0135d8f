"""The service logic of a presence replica (:class:`presence.replica.Replica`) driven the way
the service drives it: notices written to an in-memory store, each replica following the
store and folding its changes in, one fake clock for everyone. What a replica publishes is
read back as Socket.IO events on fan-out subjects; no test waits on the wall clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from presence.config import PresenceConfig
from presence.events import RoomChange, UserStatus
from presence.memory_store import MemoryPresenceStore
from presence.metrics import PresenceMetrics
from presence.ownership import event_key, owner
from presence.replica import Replica
from presence.store import Change, PresenceStore
from shared.presence_wire import GatewayBoot, SocketRecord, TypingNotice, room_key
from shared.subjects import Subjects
from tests.support.fake_clock import FakeClock

GRACE = 5.0
TYPING_TTL = 3.0
REPLICA_TTL = 3.0
CONFIG = PresenceConfig(grace=GRACE, typing_ttl=TYPING_TTL, tombstone_ttl=60.0)
SUBJECTS = Subjects("t")
ROOM = "room:a"
LOBBY = room_key("/chat", ROOM)
SYNC_ROOM = room_key("/chat", "sync")



class Node:
    """One replica following the store, as the service's follow loop feeds it."""

    def __init__(self, me: str, store: PresenceStore, clock: FakeClock,
                 live: set[str]) -> None:
        self._registry = CollectorRegistry()
        self.replica = Replica(me, CONFIG, SUBJECTS, PresenceMetrics(self._registry), live,
                               window=2 * REPLICA_TTL)
        self._store = store
        self._clock = clock
        self._changes = store.follow()
        self._syncs = 0

    async def start(self) -> None:
        initial: list[Change] = []
        while (change := await anext(self._changes)) is not None:
            initial.append(change)
        self.replica.restore(initial, self._clock())

    async def sync(self) -> None:
        """Fold in every change written so far: a marker goes last through the store (a
        typing stop of nobody, which changes nothing) and everything before it is applied."""
        self._syncs += 1
        marker = TypingNotice(SYNC_ROOM, f"sync-{self._syncs}", False, self._clock())
        await self._store.store_typing(marker)
        while True:
            change = await anext(self._changes)
            assert change is not None
            self.replica.apply(change, self._clock())
            if change.kind == "t" and change.parts == (SYNC_ROOM, marker.user):
                return

    def heard(self) -> list[tuple[str, str, dict[str, Any]]]:
        """``(subject, event, data)`` of everything published since the last call."""
        out = []
        for subject, body in self.replica.take_outgoing():
            name, data = orjson.loads(body)
            out.append((subject, name, data))
        return out

    def sample(self, name: str) -> float | None:
        return self._registry.get_sample_value(f"switchboard_presence_{name}")

    async def close(self) -> None:
        await self._changes.aclose()  # type: ignore[attr-defined]


class Cluster:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.store = MemoryPresenceStore(self.clock, CONFIG.tombstone_ttl, TYPING_TTL)
        self.live = {"gw1", "gw2"}
        self.nodes: list[Node] = []
        self._seqs: dict[str, int] = {}

    async def node(self, me: str, beat: bool = True) -> Node:
        node = Node(me, self.store, self.clock, self.live)
        self.nodes.append(node)
        await node.start()
        if beat:
            await self.store.beat(me, REPLICA_TTL)
        return node

    async def socket(self, conn: str, user: str, rooms: set[str], alive: bool = True, *,
                     gateway: str = "gw1", boot: str = "b1") -> None:
        self._seqs[conn] = self._seqs.get(conn, 0) + 1
        await self.store.store_record(SocketRecord(
            gateway, boot, conn, user, frozenset(room_key("/chat", r) for r in rooms), alive,
            self._seqs[conn], self.clock()))

    async def sync(self) -> None:
        for node in self.nodes:
            await node.sync()

    async def present(self, conn: str, user: str, rooms: set[str], **where: str) -> None:
        """A socket every replica has folded in, its announcements already heard."""
        await self.socket(conn, user, rooms, **where)
        await self.sync()
        for node in self.nodes:
            node.heard()

    def gateway_dies(self, gateway: str) -> None:
        """What the registry's watch does: the live set loses it, then it calls back."""
        self.live.discard(gateway)
        for node in self.nodes:
            node.replica.gateway_gone(gateway, self.clock())

    def after(self, seconds: float) -> None:
        """Time passes; every replica's timers fire."""
        self.clock.now += seconds
        for node in self.nodes:
            node.replica.tick(self.clock())

    async def close(self) -> None:
        for node in self.nodes:
            await node.close()


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    made = Cluster()
    try:
        yield made
    finally:
        await made.close()


FAN = SUBJECTS.fanout("/chat", ROOM)
JOINED = (FAN, "presence:update", {"room": ROOM, "user": "alice", "status": "joined"})
ONLINE = (FAN, "presence:update", {"user": "alice", "status": "online"})
LEFT = (FAN, "presence:update", {"room": ROOM, "user": "alice", "status": "left"})
OFFLINE = (FAN, "presence:update", {"user": "alice", "status": "offline"})


def everything(cluster: Cluster) -> list[tuple[str, str, dict[str, Any]]]:
    return [item for node in cluster.nodes for item in node.heard()]


async def test_a_first_socket_in_a_room_is_announced_once_into_the_room(
    cluster: Cluster,
) -> None:
    node = await cluster.node("p1")
    await cluster.socket("c1", "alice", {ROOM})
    await cluster.sync()

    assert node.heard() == [JOINED, ONLINE]
    assert node.replica.state.members(LOBBY) == {"alice": 1}


async def test_a_departure_is_announced_after_the_grace_offline_first(
    cluster: Cluster,
) -> None:
    node = await cluster.node("p1")
    await cluster.present("c1", "alice", {ROOM})

    await cluster.socket("c1", "alice", set(), alive=False)
    await cluster.sync()
    assert node.heard() == []
    cluster.after(GRACE)

    assert node.heard() == [OFFLINE, LEFT]


async def test_typing_goes_into_the_room_and_stops_after_the_ttl(cluster: Cluster) -> None:
    node = await cluster.node("p1")
    await cluster.socket("c1", "alice", {ROOM})
    await cluster.store.store_typing(TypingNotice(LOBBY, "alice", True, cluster.clock()))
    await cluster.sync()
    start = (FAN, "typing:start", {"room": ROOM, "user": "alice"})
    assert node.heard()[-1] == start

    assert node.replica.state.next_deadline() == cluster.clock() + TYPING_TTL
    cluster.after(TYPING_TTL)
    assert node.heard() == [(FAN, "typing:stop", {"room": ROOM, "user": "alice"})]


async def test_two_replicas_announce_each_event_once_between_them(cluster: Cluster) -> None:
    one, two = await cluster.node("p1"), await cluster.node("p2")
    users = [f"user{n}" for n in range(20)]
    for n, user in enumerate(users):
        await cluster.socket(f"c{n}", user, {ROOM})
    await cluster.sync()

    heard_one, heard_two = one.heard(), two.heard()
    assert heard_one and heard_two  # the work is shared
    statuses = sorted((d["user"], d["status"]) for _, _, d in heard_one + heard_two)
    assert statuses == sorted((u, s) for u in users for s in ("joined", "online"))


async def test_a_restarted_replica_adopts_the_store_without_announcing(
    cluster: Cluster,
) -> None:
    await cluster.socket("c1", "alice", {ROOM})
    await cluster.socket("c2", "bob", {ROOM})

    node = await cluster.node("p1")
    await cluster.sync()

    assert node.heard() == []
    assert node.replica.state.members(LOBBY) == {"alice": 1, "bob": 1}
    assert node.sample("online_users") == 2


async def test_a_dead_replicas_share_is_announced_again_by_the_survivor(
    cluster: Cluster,
) -> None:
    survivor, doomed = await cluster.node("p1"), await cluster.node("p2")
    users = [f"user{n}" for n in range(20)]
    for n, user in enumerate(users):
        await cluster.socket(f"c{n}", user, {ROOM})
    await cluster.sync()
    survivor.heard()
    doomed.heard()  # published, or not: it dies now, and the survivor cannot know

    cluster.clock.now += REPLICA_TTL / 3
    await cluster.store.beat("p1", REPLICA_TTL)  # p1 beats on, p2 does not
    cluster.clock.now += REPLICA_TTL * 2 / 3
    assert cluster.store.expire() == 1
    await survivor.sync()

    again = survivor.heard()
    owned = [event for user in users
             for event in (RoomChange(LOBBY, user, "joined"), UserStatus(user, "online"))
             if owner(event_key(event), {"p1", "p2"}) == "p2"]
    assert len(again) == len(owned) > 0
    assert survivor.sample("reannounced_total") == len(owned)
    assert survivor.replica.owners.replicas == {"p1"}


async def test_a_replica_that_leaves_hands_over_without_announcing_again(
    cluster: Cluster,
) -> None:
    stays, leaves = await cluster.node("p1"), await cluster.node("p2")
    for n in range(10):
        await cluster.socket(f"c{n}", f"user{n}", {ROOM})
    await cluster.sync()
    stays.heard()

    await cluster.store.leave("p2")
    await cluster.sync()

    assert stays.heard() == []
    assert leaves.replica.take_left() and not stays.replica.take_left()
    assert not leaves.replica.take_left()  # once per departure
    assert stays.replica.owners.replicas == {"p1"}


async def test_events_computed_before_any_replica_is_known_go_out_with_the_first(
    cluster: Cluster,
) -> None:
    node = await cluster.node("p1", beat=False)
    await cluster.socket("c1", "alice", {ROOM})
    await cluster.sync()
    assert node.heard() == []

    await cluster.store.beat("p1", REPLICA_TTL)
    await cluster.sync()

    assert node.heard() == [JOINED, ONLINE]


async def test_a_dead_gateways_users_go_offline_and_its_run_is_dropped(
    cluster: Cluster,
) -> None:
    node = await cluster.node("p1")
    await cluster.present("c1", "alice", {ROOM}, gateway="gw2")

    cluster.gateway_dies("gw2")
    assert node.heard() == []
    assert node.sample("gateways_down_total") == 1
    cluster.after(GRACE)

    assert node.heard() == [OFFLINE, LEFT]
    assert node.replica.take_drops() == [("gw2", "b1")]
    assert node.replica.owns_run("gw2", "b1")


async def test_a_user_who_moved_off_a_dead_gateway_within_the_grace_is_silent(
    cluster: Cluster,
) -> None:
    node = await cluster.node("p1")
    await cluster.present("c1", "alice", {ROOM}, gateway="gw2")

    cluster.gateway_dies("gw2")
    cluster.clock.now += 1.0
    await cluster.socket("c9", "alice", {ROOM}, gateway="gw1")
    await cluster.sync()
    cluster.after(GRACE)

    assert node.heard() == []
    assert node.replica.state.members(LOBBY) == {"alice": 1}


async def test_a_gateway_restarted_under_its_id_closes_its_old_runs_sockets(
    cluster: Cluster,
) -> None:
    node = await cluster.node("p1")
    await cluster.present("c1", "alice", {ROOM}, boot="old")

    cluster.clock.now += 1.0
    await cluster.store.store_boot(GatewayBoot("gw1", "new", cluster.clock()))
    await cluster.sync()
    cluster.after(GRACE)

    assert node.heard() == [OFFLINE, LEFT]
    assert node.replica.take_drops() == [("gw1", "old")]


async def test_a_late_record_of_a_replaced_run_does_not_bring_its_socket_back(
    cluster: Cluster,
) -> None:
    node = await cluster.node("p1")
    await cluster.store.store_boot(GatewayBoot("gw1", "new", cluster.clock()))
    await cluster.sync()
    await cluster.socket("c1", "alice", {ROOM}, boot="old")  # stamped later, but not current
    await cluster.sync()

    assert node.heard() == []
    assert node.replica.state.members(LOBBY) == {}


async def test_restoring_a_dead_runs_records_skips_them_and_drops_the_run_later(
    cluster: Cluster,
) -> None:
    await cluster.socket("c1", "alice", {ROOM}, gateway="gone")
    await cluster.socket("c2", "bob", {ROOM})

    node = await cluster.node("p1")
    await cluster.sync()

    assert node.replica.state.members(LOBBY) == {"bob": 1}
    assert node.replica.take_drops() == [("gone", "b1")]
    assert node.replica.owns_run("gone", "b1")  # decided at drop time: p1 has beaten by now


async def test_nobody_owns_a_run_while_no_replica_is_known(cluster: Cluster) -> None:
    node = await cluster.node("p1", beat=False)

    assert not node.replica.owns_run("gw1", "b1")
