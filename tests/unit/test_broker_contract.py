"""The :class:`gateway.broker.Broker` contract, one suite for every implementation.

Each test asks the ``broker_factory`` fixture for brokers that share one bus (one NATS, one
:class:`MemoryBus`), as gateways of one cluster do. Nothing here sleeps or assumes delivery is
synchronous: a :class:`Sink` waits (up to a bound) for a *barrier* message published after the
messages under test, on the same path (logged or not) and from the same publisher. A room's
messages from one publisher arrive in order, and a durable namespace's logged messages arrive
in log order, so whatever did not arrive before the barrier never will.

The suite is split as the interfaces are: :class:`SubscriptionContract` (the gateway's
fan-out side), :class:`RoomLogContract` and :class:`InboxContract` (what the router uses too,
through a ``log_factory``), and :class:`BrokerContract`, all three. To run it against another
broker, subclass :class:`BrokerContract` in a module of its own and give it a
``broker_factory`` fixture that yields a :class:`BrokerFactory`; for a log alone, subclass the
log and inbox parts and give them a ``log_factory`` (the NATS ones live in
``tests/integration/test_nats_broker_contract.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import pytest

from gateway.broker import Broker, Delivery, PublishResult, Stored
from gateway.memory_broker import MemoryBroker, MemoryBus
from shared.room_log import Inbox, RoomLog
from tests.support.timing import UNIT

CHAT = "/chat"
NOTIFICATIONS = "/notifications"
LIVE = "/live-updates"
BARRIER = b"--barrier--"

# (namespace, logged): the two delivery paths every delivery guarantee must hold on.
PATHS = [pytest.param(LIVE, False, id="ephemeral"), pytest.param(CHAT, True, id="logged")]


@dataclass
class BrokerFactory:
    """Makes brokers on one shared bus and closes every one it made."""

    name: str
    make: Callable[[], Awaitable[Broker]]
    made: list[Broker] = field(default_factory=list)

    async def __call__(self) -> Broker:
        broker = await self.make()
        self.made.append(broker)
        return broker

    async def close_all(self) -> None:
        for broker in self.made:
            await broker.close()


class Sink:
    """A broker's sink that records deliveries and lets a test wait for a barrier."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._arrived = asyncio.Event()

    def __call__(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        self._arrived.set()

    async def until(self, room: str, barrier: bytes = BARRIER) -> list[Delivery]:
        """Every delivery before the barrier of ``room``, once it arrived (bounded wait)."""
        async with asyncio.timeout(5 * UNIT):
            while (index := self._index(room, barrier)) is None:
                self._arrived.clear()
                await self._arrived.wait()
        return [d for d in self.deliveries[:index] if d.body != barrier]

    def _index(self, room: str, barrier: bytes) -> int | None:
        for index, delivery in enumerate(self.deliveries):
            if delivery.room == room and delivery.body == barrier:
                return index
        return None


async def subscribed(factory: BrokerFactory, nsp: str, *rooms: str) -> tuple[Broker, Sink]:
    broker, sink = await factory(), Sink()
    broker.attach(sink)
    for room in rooms:
        await broker.subscribe(nsp, room)
    return broker, sink


class LogAndInbox(RoomLog, Inbox, Protocol):
    async def close(self) -> None: ...


LogFactory = Callable[[], Awaitable[LogAndInbox]]
"""Makes room logs on one shared bus (a broker is one); the fixture closes them."""


def bodies(deliveries: list[Delivery]) -> list[bytes]:
    return [delivery.body for delivery in deliveries]


class SubscriptionContract:
    """Fan-out subscriptions, and the log's order and sequences as deliveries carry them
    (see :class:`gateway.broker.Subscriptions`)."""



    @pytest.mark.parametrize(("nsp", "logged"), PATHS)
    async def test_subscriber_gets_each_message_once_in_publish_order(
        self, broker_factory: BrokerFactory, nsp: str, logged: bool
    ) -> None:
        publisher = await broker_factory()
        _, sink = await subscribed(broker_factory, nsp, "room:a")

        for n in range(30):
            await publisher.publish(nsp, "room:a", f"m{n}".encode(), logged=logged)
        await publisher.publish(nsp, "room:a", BARRIER, logged=logged)

        got = await sink.until("room:a")
        assert bodies(got) == [f"m{n}".encode() for n in range(30)]
        assert {(d.nsp, d.room) for d in got} == {(nsp, "room:a")}

    @pytest.mark.parametrize(("nsp", "logged"), PATHS)
    async def test_every_subscribed_broker_receives_including_the_publisher(
        self, broker_factory: BrokerFactory, nsp: str, logged: bool
    ) -> None:
        publisher, own = await subscribed(broker_factory, nsp, "room:a")
        _, first = await subscribed(broker_factory, nsp, "room:a")
        _, second = await subscribed(broker_factory, nsp, "room:a")

        await publisher.publish(nsp, "room:a", b"one", logged=logged)
        await publisher.publish(nsp, "room:a", b"two", logged=logged)
        await publisher.publish(nsp, "room:a", BARRIER, logged=logged)

        for sink in (own, first, second):
            assert bodies(await sink.until("room:a")) == [b"one", b"two"]

    async def test_subscribing_twice_delivers_once(self, broker_factory: BrokerFactory) -> None:
        publisher = await broker_factory()
        subscriber, sink = await subscribed(broker_factory, CHAT, "room:a")
        await subscriber.subscribe(CHAT, "room:a")

        await publisher.publish(CHAT, "room:a", b"once", logged=True)
        await publisher.publish(CHAT, "room:a", BARRIER, logged=True)

        assert bodies(await sink.until("room:a")) == [b"once"]

    @pytest.mark.parametrize(("nsp", "logged"), PATHS)
    async def test_body_bytes_arrive_unchanged(
        self, broker_factory: BrokerFactory, nsp: str, logged: bool
    ) -> None:
        publisher = await broker_factory()
        _, sink = await subscribed(broker_factory, nsp, "room:a")
        body = b'["message:received",{}]\x00' + bytes(range(256)) * 40

        await publisher.publish(nsp, "room:a", body, logged=logged)
        await publisher.publish(nsp, "room:a", BARRIER, logged=logged)

        assert bodies(await sink.until("room:a")) == [body]

    @pytest.mark.parametrize(("nsp", "logged"), PATHS)
    async def test_rooms_and_namespaces_are_separate(
        self, broker_factory: BrokerFactory, nsp: str, logged: bool
    ) -> None:
        publisher = await broker_factory()
        _, sink = await subscribed(broker_factory, nsp, "room:a")
        other_nsp = NOTIFICATIONS if nsp == CHAT else "/"

        await publisher.publish(nsp, "room:b", b"other room", logged=logged)
        await publisher.publish(other_nsp, "room:a", b"other namespace", logged=logged)
        await publisher.publish(nsp, "room:a", BARRIER, logged=logged)

        assert await sink.until("room:a") == []

    async def test_hostile_room_names_do_not_leak_into_other_rooms(
        self, broker_factory: BrokerFactory
    ) -> None:
        publisher = await broker_factory()
        _, sink = await subscribed(broker_factory, CHAT, "user:a.b")

        for room in ["user:a.*", "user:a.>", "user:a", "user:a b", "*", ">"]:
            await publisher.publish(CHAT, room, room.encode(), logged=True)
        await publisher.publish(CHAT, "user:a.b", BARRIER, logged=True)

        assert await sink.until("user:a.b") == []

    @pytest.mark.parametrize(("nsp", "logged"), PATHS)
    async def test_unsubscribed_broker_gets_nothing(
        self, broker_factory: BrokerFactory, nsp: str, logged: bool
    ) -> None:
        publisher = await broker_factory()
        leaver, left = await subscribed(broker_factory, nsp, "room:a", "room:barrier")
        _, stayed = await subscribed(broker_factory, nsp, "room:a")

        await leaver.unsubscribe(nsp, "room:a")
        await publisher.publish(nsp, "room:a", b"after unsubscribe", logged=logged)
        await publisher.publish(nsp, "room:a", BARRIER, logged=logged)
        await publisher.publish(nsp, "room:barrier", BARRIER, logged=logged)

        assert bodies(await stayed.until("room:a")) == [b"after unsubscribe"]
        assert await left.until("room:barrier") == []

    async def test_unsubscribe_of_a_room_not_subscribed_is_a_no_op(
        self, broker_factory: BrokerFactory
    ) -> None:
        broker, sink = await subscribed(broker_factory, CHAT, "room:a")

        await broker.unsubscribe(CHAT, "room:never")
        await broker.unsubscribe(LIVE, "room:a")
        await broker.publish(CHAT, "room:a", BARRIER, logged=True)

        assert await sink.until("room:a") == []

    async def test_resubscribe_after_unsubscribe(self, broker_factory: BrokerFactory) -> None:
        publisher = await broker_factory()
        subscriber, sink = await subscribed(broker_factory, CHAT, "room:a")
        await subscriber.unsubscribe(CHAT, "room:a")
        await subscriber.subscribe(CHAT, "room:a")

        await publisher.publish(CHAT, "room:a", b"back", logged=True)
        await publisher.publish(CHAT, "room:a", BARRIER, logged=True)

        assert bodies(await sink.until("room:a")) == [b"back"]

    async def test_closed_broker_gets_nothing(self, broker_factory: BrokerFactory) -> None:
        publisher = await broker_factory()
        closer, closed = await subscribed(broker_factory, CHAT, "room:a")
        _, stayed = await subscribed(broker_factory, CHAT, "room:a")

        await closer.close()
        await publisher.publish(CHAT, "room:a", b"after close", logged=True)
        await publisher.publish(CHAT, "room:a", BARRIER, logged=True)

        assert bodies(await stayed.until("room:a")) == [b"after close"]
        assert closed.deliveries == []

    async def test_publish_without_subscribers_succeeds(
        self, broker_factory: BrokerFactory
    ) -> None:
        broker = await broker_factory()

        logged = await broker.publish(CHAT, "room:empty", b"nobody home", msg_id="m-1",
                                      logged=True)
        ephemeral = await broker.publish(LIVE, "room:empty", b"nobody home")

        assert logged.seq is not None
        assert logged.duplicate is False
        assert ephemeral == PublishResult(None, False)


    @pytest.mark.parametrize(("nsp", "logged"), [(CHAT, False), (LIVE, False), (LIVE, True)],
                             ids=["durable-unlogged", "ephemeral", "ephemeral-logged-flag"])
    async def test_unlogged_publish_carries_no_sequence_and_leaves_no_log(
        self, broker_factory: BrokerFactory, nsp: str, logged: bool
    ) -> None:
        publisher = await broker_factory()
        _, sink = await subscribed(broker_factory, nsp, "room:a")

        result = await publisher.publish(nsp, "room:a", b"fleeting", msg_id="x-1", logged=logged)
        await publisher.publish(nsp, "room:a", BARRIER, logged=logged)

        assert result == PublishResult(None, False)
        assert await sink.until("room:a") == [Delivery(nsp, "room:a", b"fleeting", None, None)]
        if nsp == CHAT:
            assert await publisher.last_seq(CHAT, "room:a") == 0


    async def test_deliveries_carry_seq_and_the_rooms_previous_seq_in_log_order(
        self, broker_factory: BrokerFactory
    ) -> None:
        publisher = await broker_factory()
        _, sink = await subscribed(broker_factory, CHAT, "room:a", "room:b", "room:c")
        rooms = ["room:a", "room:b", "room:a", "room:c", "room:b", "room:a", "room:a"]

        seqs = [(await publisher.publish(CHAT, room, f"m{n}".encode(), logged=True)).seq
                for n, room in enumerate(rooms)]
        await publisher.publish(CHAT, "room:a", BARRIER, logged=True)

        expected, last = [], {}
        for n, (room, seq) in enumerate(zip(rooms, seqs, strict=True)):
            expected.append(Delivery(CHAT, room, f"m{n}".encode(), seq, last.get(room, 0)))
            last[room] = seq
        assert await sink.until("room:a") == expected

    async def test_a_duplicate_msg_id_answers_the_original_seq_and_is_not_delivered(
        self, broker_factory: BrokerFactory
    ) -> None:
        publisher = await broker_factory()
        _, sink = await subscribed(broker_factory, CHAT, "room:a")

        first = await publisher.publish(CHAT, "room:a", b"hello", msg_id="u1:c1", logged=True)
        retry = await publisher.publish(CHAT, "room:a", b"hello", msg_id="u1:c1", logged=True)
        other = await publisher.publish(CHAT, "room:a", b"hello", msg_id="u1:c2", logged=True)
        await publisher.publish(CHAT, "room:a", BARRIER, logged=True)

        assert first.duplicate is False
        assert retry == PublishResult(first.seq, True)
        assert other.duplicate is False
        assert other.seq is not None and first.seq is not None and other.seq > first.seq
        assert [(d.body, d.seq) for d in await sink.until("room:a")] == [
            (b"hello", first.seq), (b"hello", other.seq)]
        assert await publisher.read(CHAT, "room:a", 0, other.seq, 100) == [
            Stored(first.seq, b"hello"), Stored(other.seq, b"hello")]

    async def test_begun_publishes_are_stored_in_order_and_answered_once_each(
        self, broker_factory: BrokerFactory
    ) -> None:
        publisher = await broker_factory()
        _, sink = await subscribed(broker_factory, CHAT, "room:a")
        answers: dict[str, list[PublishResult | None]] = {}
        for key in ("c1", "c2", "c1", "c3"):
            answers.setdefault(key, [])
            publisher.begin_publish(CHAT, "room:a", key.encode(), f"u1:{key}", True,
                                    answers[key].append)
        await publisher.publish(CHAT, "room:a", BARRIER, logged=True)

        delivered = await sink.until("room:a")
        assert bodies(delivered) == [b"c1", b"c2", b"c3"]
        first, retry = answers["c1"]
        assert first == PublishResult(delivered[0].seq, False)
        assert retry == PublishResult(delivered[0].seq, True)
        assert answers["c2"] == [PublishResult(delivered[1].seq, False)]
        assert answers["c3"] == [PublishResult(delivered[2].seq, False)]

    @pytest.mark.parametrize(("nsp", "logged"), PATHS)
    async def test_a_begun_publish_is_delivered(
        self, broker_factory: BrokerFactory, nsp: str, logged: bool
    ) -> None:
        publisher = await broker_factory()
        _, sink = await subscribed(broker_factory, nsp, "room:a")
        answers: list[PublishResult | None] = []
        publisher.begin_publish(nsp, "room:a", b"begun", None, logged, answers.append)
        await publisher.publish(nsp, "room:a", BARRIER, logged=logged)

        assert bodies(await sink.until("room:a")) == [b"begun"]
        assert len(answers) == 1 and answers[0] is not None


class RoomLogContract:
    """What every room log guarantees (:class:`shared.room_log.RoomLog`): the gateway's
    broker, and the log alone as the router uses it."""

    async def test_logged_publish_answers_increasing_sequences(
        self, log_factory: LogFactory
    ) -> None:
        broker = await log_factory()

        results = [await broker.publish(CHAT, room, f"m{n}".encode(), logged=True)
                   for n, room in enumerate(["room:a", "room:b", "room:a", "room:c"])]

        seqs = [result.seq for result in results]
        assert all(isinstance(seq, int) and seq > 0 for seq in seqs)
        assert seqs == sorted(set(seqs))  # type: ignore[type-var]
        assert not any(result.duplicate for result in results)

    async def test_publishes_without_msg_id_are_never_deduplicated(
        self, log_factory: LogFactory
    ) -> None:
        broker = await log_factory()

        first = await broker.publish(CHAT, "room:a", b"same", logged=True)
        second = await broker.publish(CHAT, "room:a", b"same", logged=True)

        assert (first.duplicate, second.duplicate) == (False, False)
        assert first.seq != second.seq

    async def test_last_seq(self, log_factory: LogFactory) -> None:
        broker = await log_factory()
        assert await broker.last_seq(CHAT, "room:a") == 0

        a1 = await broker.publish(CHAT, "room:a", b"a1", logged=True)
        a2 = await broker.publish(CHAT, "room:a", b"a2", logged=True)
        b1 = await broker.publish(CHAT, "room:b", b"b1", logged=True)

        assert await broker.last_seq(CHAT, "room:a") == a2.seq != a1.seq
        assert await broker.last_seq(CHAT, "room:b") == b1.seq
        assert await broker.last_seq(CHAT, "room:never") == 0
        assert await broker.last_seq(NOTIFICATIONS, "room:a") == 0

    async def test_read_bounds_limit_order_and_room(self, log_factory: LogFactory) -> None:
        broker = await log_factory()
        a: list[int] = []
        for n in range(6):
            result = await broker.publish(CHAT, "room:a", f"a{n}".encode(), logged=True)
            assert result.seq is not None
            a.append(result.seq)
            await broker.publish(CHAT, "room:b", f"b{n}".encode(), logged=True)
        stored = [Stored(seq, f"a{n}".encode()) for n, seq in enumerate(a)]

        assert await broker.read(CHAT, "room:a", 0, a[-1], 100) == stored
        assert await broker.read(CHAT, "room:a", 0, 10**9, 100) == stored
        assert await broker.read(CHAT, "room:a", a[1], a[4], 100) == stored[2:5]
        assert await broker.read(CHAT, "room:a", a[1] - 1, a[4] - 1, 100) == stored[1:4]
        assert await broker.read(CHAT, "room:a", 0, 10**9, 2) == stored[:2]
        assert await broker.read(CHAT, "room:a", a[2], 10**9, 2) == stored[3:5]
        assert await broker.read(CHAT, "room:a", a[-1], 10**9, 100) == []
        assert await broker.read(CHAT, "room:a", a[3], a[3], 100) == []
        assert await broker.read(CHAT, "room:never", 0, 10**9, 100) == []
        assert await broker.read(NOTIFICATIONS, "room:a", 0, 10**9, 100) == []

    async def test_read_pages_through_long_rooms(self, log_factory: LogFactory) -> None:
        broker = await log_factory()
        seqs = []
        for n in range(300):
            result = await broker.publish(CHAT, "room:long", b"%d" % n, logged=True)
            seqs.append(result.seq)

        found = await broker.read(CHAT, "room:long", 0, 10**9, 1000)

        assert [m.seq for m in found] == seqs
        assert [m.body for m in found] == [b"%d" % n for n in range(300)]
        assert len(await broker.read(CHAT, "room:long", 0, 10**9, 270)) == 270

    async def test_prev_of(self, log_factory: LogFactory) -> None:
        broker = await log_factory()
        a1 = (await broker.publish(CHAT, "room:a", b"a1", logged=True)).seq
        b1 = (await broker.publish(CHAT, "room:b", b"b1", logged=True)).seq
        a2 = (await broker.publish(CHAT, "room:a", b"a2", logged=True)).seq
        assert a1 is not None and b1 is not None and a2 is not None

        assert await broker.prev_of(CHAT, "room:a", a1) == 0
        assert await broker.prev_of(CHAT, "room:a", b1) == a1
        assert await broker.prev_of(CHAT, "room:a", a2) == a1
        assert await broker.prev_of(CHAT, "room:a", a2 + 1) == a2
        assert await broker.prev_of(CHAT, "room:b", a2) == b1
        assert await broker.prev_of(CHAT, "room:b", b1) == 0
        assert await broker.prev_of(CHAT, "room:never", a2) == 0
        assert await broker.prev_of(CHAT, "room:a", 1) == 0

    async def test_prev_of_a_seq_past_the_end_of_the_log(
        self, log_factory: LogFactory
    ) -> None:
        broker = await log_factory()
        a1 = (await broker.publish(CHAT, "room:a", b"a1", logged=True)).seq
        b1 = (await broker.publish(CHAT, "room:b", b"b1", logged=True)).seq
        assert a1 is not None and b1 is not None

        assert await broker.prev_of(CHAT, "room:a", b1 + 2) == a1
        assert await broker.prev_of(CHAT, "room:b", b1 + 100) == b1

    async def test_first_seq_of_a_log_that_was_never_trimmed(
        self, log_factory: LogFactory
    ) -> None:
        broker = await log_factory()
        assert await broker.first_seq(CHAT) == 1

        await broker.publish(CHAT, "room:a", b"a1", logged=True)
        await broker.publish(CHAT, "room:b", b"b1", logged=True)

        assert await broker.first_seq(CHAT) == 1
        assert await broker.first_seq(NOTIFICATIONS) == 1

    async def test_first_seq_asked_by_many_at_once_answers_each(
        self, log_factory: LogFactory
    ) -> None:
        broker = await log_factory()
        await broker.publish(CHAT, "room:a", b"a1", logged=True)

        asked = [CHAT] * 5 + [NOTIFICATIONS]
        answers = await asyncio.gather(*(broker.first_seq(nsp) for nsp in asked))

        assert answers == [1] * 6

    async def test_namespaces_have_separate_logs(self, log_factory: LogFactory) -> None:
        broker = await log_factory()

        chat = await broker.publish(CHAT, "room:a", b"chat", msg_id="same", logged=True)
        note = await broker.publish(NOTIFICATIONS, "room:a", b"note", msg_id="same",
                                    logged=True)

        assert note.duplicate is False
        assert await broker.read(CHAT, "room:a", 0, 10**9, 10) == [Stored(chat.seq or 0, b"chat")]
        assert await broker.read(NOTIFICATIONS, "room:a", 0, 10**9, 10) == [
            Stored(note.seq or 0, b"note")]
        assert await broker.last_seq(NOTIFICATIONS, "room:a") == note.seq


class InboxContract:
    """What every inbox guarantees (:class:`shared.room_log.Inbox`)."""

    async def test_kept_messages_come_back_in_order_per_user(
        self, log_factory: LogFactory
    ) -> None:
        log = await log_factory()
        await log.store_inbox("alice", b"a1")
        await log.store_inbox("bob", b"b1")
        await log.store_inbox("alice", b"a2")

        alice = await log.take_inbox("alice")
        assert [m.body for m in alice] == [b"a1", b"a2"]
        assert alice[0].seq < alice[1].seq
        assert [m.body for m in await log.take_inbox("bob")] == [b"b1"]
        assert await log.take_inbox("carol") == []

    async def test_clear_forgets_up_to_a_sequence(self, log_factory: LogFactory) -> None:
        log = await log_factory()
        for body in (b"1", b"2", b"3"):
            await log.store_inbox("a.b c", body)
        kept = await log.take_inbox("a.b c")

        await log.clear_inbox("a.b c", kept[1].seq)

        assert await log.take_inbox("a.b c") == kept[2:]


class BrokerContract(SubscriptionContract, RoomLogContract, InboxContract):
    """What every broker guarantees (see :class:`gateway.broker.Broker`): all three parts."""

    @pytest.fixture
    def log_factory(self, broker_factory: BrokerFactory) -> LogFactory:
        return broker_factory


async def _memory_factory() -> AsyncIterator[BrokerFactory]:
    bus = MemoryBus()

    async def make() -> Broker:
        return MemoryBroker(bus)

    factory = BrokerFactory("memory", make)
    try:
        yield factory
    finally:
        await factory.close_all()


class TestMemoryBroker(BrokerContract):
    @pytest.fixture(params=["memory"])
    async def broker_factory(self, request: pytest.FixtureRequest) -> AsyncIterator[BrokerFactory]:
        factories = {"memory": _memory_factory}
        async for factory in factories[request.param]():
            yield factory
