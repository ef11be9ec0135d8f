"""The :class:`presence.store.PresenceStore` contract, one suite for every implementation.

Each test asks the ``harness`` fixture for a :class:`StoreHarness`: stores that share one
bucket (as the replicas of one cluster do) and a way to let time pass (a fake clock for the
memory store, real seconds for NATS). Nothing here assumes a write is seen synchronously: a
:class:`Follower` waits (up to a bound) for the change it expects, and since every follower
sees the store's changes in one order, whatever came before that change already arrived.

To run the suite against another store, subclass :class:`PresenceStoreContract` in a module of
its own and give it a ``harness`` fixture (the NATS one lives in
``tests/integration/test_presence_store_contract.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from presence.memory_store import MemoryPresenceStore
from presence.store import ALIVE, BYE, Change, PresenceStore
from shared.presence_wire import (
    GatewayBoot,
    SocketRecord,
    TypingNotice,
    decode,
    encode,
    room_key,
)
from tests.support.fake_clock import FakeClock
from tests.support.timing import UNIT

TOMBSTONE_TTL = 1.0
TYPING_TTL = 0.5
ROOM = room_key("/chat", "room:a")
Key = tuple[str, tuple[str, ...]]


@dataclass
class StoreHarness:
    """Stores on one bucket, a clock to move, and every follower closed at the end."""

    name: str
    make: Callable[[], Awaitable[PresenceStore]]
    elapse: Callable[[float], Awaitable[None]]
    followers: list[Follower] = field(default_factory=list)

    async def follower(self, store: PresenceStore | None = None) -> Follower:
        follower = Follower(store or await self.make())
        self.followers.append(follower)
        return follower

    async def caught_up(self, store: PresenceStore | None = None) -> Follower:
        """A follower past the current values: what it reads next are new changes."""
        follower = await self.follower(store)
        await follower.initial()
        return follower

    async def current(self, store: PresenceStore | None = None) -> dict[Key, bytes]:
        """What a new follower finds stored (deleted keys left out)."""
        return live(await (await self.follower(store)).initial())

    async def close(self) -> None:
        for follower in self.followers:
            await follower.close()


class Follower:
    """One :meth:`PresenceStore.follow`, read with bounded waits."""

    def __init__(self, store: PresenceStore) -> None:
        self._changes = store.follow()

    async def initial(self) -> list[Change]:
        """The current values, up to the caught-up marker."""
        found: list[Change] = []
        async with asyncio.timeout(5 * UNIT):
            while (change := await anext(self._changes)) is not None:
                found.append(change)
        return found

    async def until(self, wanted: Callable[[Change], bool]) -> list[Change]:
        """Every change up to and including the first ``wanted`` one."""
        seen: list[Change] = []
        async with asyncio.timeout(5 * UNIT):
            while True:
                change = await anext(self._changes)
                assert change is not None, "caught up twice"
                seen.append(change)
                if wanted(change):
                    return seen

    async def close(self) -> None:
        aclose = getattr(self._changes, "aclose", None)
        if aclose is not None:
            await aclose()


def record(conn: str = "c1", seq: int = 1, alive: bool = True, boot: str = "b1",
           rooms: frozenset[str] = frozenset({ROOM})) -> SocketRecord:
    return SocketRecord("gw.1", boot, conn, "alice", rooms if alive else frozenset(), alive,
                        seq, 10.0 + seq)


def key_of(change: Change) -> Key:
    return change.kind, change.parts


def live(changes: list[Change]) -> dict[Key, bytes]:
    return {key_of(c): c.value for c in changes if c.value is not None}


def is_delete(kind: str, *parts: str) -> Callable[[Change], bool]:
    return lambda change: (change.kind, change.parts, change.value) == (kind, parts, None)


class PresenceStoreContract:
    """What every presence store guarantees (see :class:`presence.store.PresenceStore`)."""

    async def test_follow_starts_with_every_current_value_then_says_it_caught_up(
        self, harness: StoreHarness
    ) -> None:
        store = await harness.make()
        await store.store_record(record())
        await store.store_typing(TypingNotice(ROOM, "alice", True, 1.0))
        await store.store_boot(GatewayBoot("gw.1", "b1", 1.0))
        await store.beat("replica 1", 30.0)

        found = await harness.current(store)

        assert found == {
            ("c", ("gw.1", "b1", "c1")): encode(record()),
            ("t", (ROOM, "alice")): encode(TypingNotice(ROOM, "alice", True, 1.0)),
            ("g", ("gw.1",)): encode(GatewayBoot("gw.1", "b1", 1.0)),
            ("r", ("replica 1",)): ALIVE,
        }

    async def test_an_empty_store_is_caught_up_at_once(self, harness: StoreHarness) -> None:
        assert await harness.current() == {}

    async def test_a_record_is_stored_only_when_newer_than_the_stored_one(
        self, harness: StoreHarness
    ) -> None:
        store = await harness.make()
        assert await store.store_record(record(seq=2)) is True
        assert await store.store_record(record(seq=1)) is False
        assert await store.store_record(record(seq=2, alive=False)) is False
        assert await store.store_record(record(seq=3, alive=False)) is True

        found = await harness.current(store)
        assert found[("c", ("gw.1", "b1", "c1"))] == encode(record(seq=3, alive=False))

    async def test_concurrent_writers_leave_the_highest_sequence(
        self, harness: StoreHarness
    ) -> None:
        writers = [await harness.make() for _ in range(3)]
        seqs = [5, 1, 9, 3, 7, 2, 8, 4, 6]

        await asyncio.gather(*(writers[n % 3].store_record(record(seq=seq))
                               for n, seq in enumerate(seqs)))

        found = await harness.current()
        stored = decode(found[("c", ("gw.1", "b1", "c1"))])
        assert isinstance(stored, SocketRecord) and stored.seq == 9

    async def test_a_follower_sees_later_writes_in_the_order_they_were_made(
        self, harness: StoreHarness
    ) -> None:
        store = await harness.make()
        follower = await harness.caught_up(store)

        await store.store_record(record(seq=1))
        await store.store_typing(TypingNotice(ROOM, "alice", True, 2.0))
        await store.store_record(record(seq=2))
        await store.store_typing(TypingNotice(ROOM, "alice", False, 3.0))

        changes = await follower.until(lambda c: c.kind == "t" and c.value is not None
                                       and b'"active":false' in c.value)
        assert [c.value for c in changes] == [
            encode(record(seq=1)), encode(TypingNotice(ROOM, "alice", True, 2.0)),
            encode(record(seq=2)), encode(TypingNotice(ROOM, "alice", False, 3.0))]

    async def test_every_follower_sees_the_same_order(self, harness: StoreHarness) -> None:
        writers = [await harness.make() for _ in range(2)]
        one, two = await harness.caught_up(), await harness.caught_up()

        await asyncio.gather(*(writers[n % 2].store_record(record(conn=f"c{n}"))
                               for n in range(10)))
        await writers[1].beat("last", 30.0)

        def last(change: Change) -> bool:
            return change.kind == "r"

        seen_by_one = [key_of(c) for c in await one.until(last)]
        seen_by_two = [key_of(c) for c in await two.until(last)]
        assert seen_by_one == seen_by_two
        assert len(seen_by_one) == 11

    async def test_dropping_a_run_deletes_only_its_records(self, harness: StoreHarness) -> None:
        store = await harness.make()
        for conn in ("c1", "c2"):
            await store.store_record(record(conn=conn))
        await store.store_record(record(conn="c9", boot="b2"))
        follower = await harness.caught_up(store)

        assert await store.drop_instance("gw.1", "b1") == 2
        assert await store.drop_instance("gw.1", "b-unknown") == 0

        deleted = await follower.until(is_delete("c", "gw.1", "b1", "c2"))
        assert {key_of(c) for c in deleted if c.value is None} >= {
            ("c", ("gw.1", "b1", "c1")), ("c", ("gw.1", "b1", "c2"))}
        found = await harness.current()
        assert list(found) == [("c", ("gw.1", "b2", "c9"))]

    async def test_typing_and_boot_notices_keep_the_last_write(
        self, harness: StoreHarness
    ) -> None:
        store = await harness.make()
        await store.store_typing(TypingNotice(ROOM, "alice", True, 1.0))
        await store.store_typing(TypingNotice(ROOM, "alice", False, 2.0))
        await store.store_boot(GatewayBoot("gw.1", "b1", 1.0))
        await store.store_boot(GatewayBoot("gw.1", "b2", 2.0))

        found = await harness.current(store)
        assert found[("t", (ROOM, "alice"))] == encode(TypingNotice(ROOM, "alice", False, 2.0))
        assert found[("g", ("gw.1",))] == encode(GatewayBoot("gw.1", "b2", 2.0))

    async def test_a_replica_that_stops_beating_expires(self, harness: StoreHarness) -> None:
        store = await harness.make()
        follower = await harness.caught_up(store)

        await store.beat("r.1 x", 1.0)
        assert (await follower.until(lambda c: c.kind == "r"))[-1].value == ALIVE
        await harness.elapse(1.0)

        await follower.until(is_delete("r", "r.1 x"))

    async def test_a_leaving_replica_says_bye_and_then_expires(
        self, harness: StoreHarness
    ) -> None:
        store = await harness.make()
        await store.beat("r1", 30.0)
        follower = await harness.caught_up(store)

        await store.leave("r1")
        assert (await follower.until(lambda c: c.kind == "r"))[-1].value == BYE
        await harness.elapse(1.0)

        await follower.until(is_delete("r", "r1"))

    async def test_tombstones_expire_and_live_records_stay(self, harness: StoreHarness) -> None:
        store = await harness.make()
        await store.store_record(record(conn="open"))
        await store.store_record(record(conn="closed", alive=False))
        follower = await harness.caught_up(store)

        await harness.elapse(TOMBSTONE_TTL)

        await follower.until(is_delete("c", "gw.1", "b1", "closed"))
        found = await harness.current()
        assert list(found) == [("c", ("gw.1", "b1", "open"))]

    async def test_typing_notices_expire_after_twice_the_typing_ttl(
        self, harness: StoreHarness
    ) -> None:
        store = await harness.make()
        await store.store_typing(TypingNotice(ROOM, "alice", True, 1.0))
        follower = await harness.caught_up(store)

        await harness.elapse(2 * TYPING_TTL)

        await follower.until(is_delete("t", ROOM, "alice"))



async def memory_harness() -> AsyncIterator[StoreHarness]:
    clock = FakeClock()
    store = MemoryPresenceStore(clock, TOMBSTONE_TTL, TYPING_TTL)

    async def make() -> PresenceStore:
        return store  # one bucket: every "replica" shares it

    async def elapse(seconds: float) -> None:
        clock.now += seconds
        store.expire()

    harness = StoreHarness("memory", make, elapse)
    try:
        yield harness
    finally:
        await harness.close()


class TestMemoryPresenceStore(PresenceStoreContract):
    @pytest.fixture
    async def harness(self) -> AsyncIterator[StoreHarness]:
        async for made in memory_harness():
            yield made
