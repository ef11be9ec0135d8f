"""The :class:`gateway.broker.Broker` contract, one suite for every implementation.

Each test asks the ``broker_factory`` fixture for brokers that share one bus (one NATS, one
:class:`MemoryBus`), as gateways of one cluster do. Nothing here sleeps or assumes delivery is
synchronous: an inbox waits (up to a bound) for a *barrier* message published after the
messages under test on a room it subscribed, and since a room's messages from one publisher
arrive in order, whatever did not arrive before the barrier never will.

To run the suite against another broker, subclass :class:`BrokerContract` in a module of its
own and give it a ``broker_factory`` fixture (the NATS one lives in ``tests/integration``)::

    class TestNatsBroker(BrokerContract):
        @pytest.fixture(params=["nats"])
        async def broker_factory(self, request, nats_server) -> AsyncIterator[BrokerFactory]:
            factory = BrokerFactory("nats", lambda: make_nats_broker(nats_server.url))
            try:
                yield factory
            finally:
                await factory.close_all()
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from gateway.broker import Broker, Delivery, PublishResult
from gateway.memory_broker import MemoryBroker, MemoryBus
from tests.support.timing import UNIT

CHAT = "/chat"
BARRIER = b"--barrier--"


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


class Inbox:
    """A ``deliver`` callback that records bodies and lets a test wait for a barrier."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self._arrived = asyncio.Event()

    async def deliver(self, delivery: Delivery) -> None:
        self.bodies.append(delivery.body)
        self._arrived.set()

    async def until(self, barrier: bytes = BARRIER) -> list[bytes]:
        """Everything delivered before ``barrier``, once it has arrived (bounded wait)."""
        async with asyncio.timeout(5 * UNIT):
            while barrier not in self.bodies:
                self._arrived.clear()
                await self._arrived.wait()
        return self.bodies[: self.bodies.index(barrier)]


async def yield_once() -> None:
    """Let other tasks run one step; not a timed wait."""
    done = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(done.set_result, None)
    await done


class BrokerContract:
    """What every broker guarantees (see :class:`gateway.broker.Broker`)."""

    async def test_subscriber_gets_each_message_once_in_publish_order(
        self, broker_factory: BrokerFactory
    ) -> None:
        publisher, subscriber = await broker_factory(), await broker_factory()
        inbox = Inbox()
        await subscriber.subscribe(CHAT, "room:a", inbox.deliver)

        for n in range(50):
            await publisher.publish(CHAT, "room:a", f"m{n}".encode())
        await publisher.publish(CHAT, "room:a", BARRIER)

        assert await inbox.until() == [f"m{n}".encode() for n in range(50)]

    async def test_every_subscribed_broker_receives_including_the_publisher(
        self, broker_factory: BrokerFactory
    ) -> None:
        first, second = await broker_factory(), await broker_factory()
        inbox1, inbox2 = Inbox(), Inbox()
        await first.subscribe(CHAT, "room:a", inbox1.deliver)
        await second.subscribe(CHAT, "room:a", inbox2.deliver)

        await first.publish(CHAT, "room:a", b"from first")
        await first.publish(CHAT, "room:a", BARRIER)

        assert await inbox1.until() == [b"from first"]
        assert await inbox2.until() == [b"from first"]

    async def test_body_bytes_arrive_unchanged(self, broker_factory: BrokerFactory) -> None:
        publisher, subscriber = await broker_factory(), await broker_factory()
        inbox = Inbox()
        await subscriber.subscribe(CHAT, "room:a", inbox.deliver)
        body = b'["message:received",{}]\x00' + bytes(range(256)) * 40

        await publisher.publish(CHAT, "room:a", body)
        await publisher.publish(CHAT, "room:a", BARRIER)

        assert await inbox.until() == [body]

    async def test_rooms_and_namespaces_are_separate(
        self, broker_factory: BrokerFactory
    ) -> None:
        publisher, subscriber = await broker_factory(), await broker_factory()
        inbox = Inbox()
        await subscriber.subscribe(CHAT, "room:a", inbox.deliver)

        await publisher.publish(CHAT, "room:b", b"other room")
        await publisher.publish("/live-updates", "room:a", b"other namespace")
        await publisher.publish(CHAT, "room:a", BARRIER)

        assert await inbox.until() == []

    async def test_hostile_room_names_do_not_leak_into_other_rooms(
        self, broker_factory: BrokerFactory
    ) -> None:
        publisher, subscriber = await broker_factory(), await broker_factory()
        inbox = Inbox()
        await subscriber.subscribe(CHAT, "user:a.b", inbox.deliver)

        for room in ["user:a.*", "user:a.>", "user:a", "user:a b", "*", ">"]:
            await publisher.publish(CHAT, room, room.encode())
        await publisher.publish(CHAT, "user:a.b", BARRIER)

        assert await inbox.until() == []

    async def test_unsubscribed_broker_gets_nothing(self, broker_factory: BrokerFactory) -> None:
        publisher, leaver, stayer = (await broker_factory(), await broker_factory(),
                                     await broker_factory())
        left, stayed = Inbox(), Inbox()
        await leaver.subscribe(CHAT, "room:a", left.deliver)
        await leaver.subscribe(CHAT, "room:barrier", left.deliver)
        await stayer.subscribe(CHAT, "room:a", stayed.deliver)

        await leaver.unsubscribe(CHAT, "room:a")
        await publisher.publish(CHAT, "room:a", b"after unsubscribe")
        await publisher.publish(CHAT, "room:a", BARRIER)
        await publisher.publish(CHAT, "room:barrier", BARRIER)

        assert await stayed.until() == [b"after unsubscribe"]
        assert await left.until() == []

    async def test_unsubscribe_of_a_room_not_subscribed_is_a_no_op(
        self, broker_factory: BrokerFactory
    ) -> None:
        broker = await broker_factory()
        inbox = Inbox()
        await broker.subscribe(CHAT, "room:a", inbox.deliver)

        await broker.unsubscribe(CHAT, "room:never")
        await broker.unsubscribe("/live-updates", "room:a")
        await broker.publish(CHAT, "room:a", BARRIER)

        assert await inbox.until() == []

    async def test_resubscribe_after_unsubscribe(self, broker_factory: BrokerFactory) -> None:
        publisher, subscriber = await broker_factory(), await broker_factory()
        inbox = Inbox()
        await subscriber.subscribe(CHAT, "room:a", inbox.deliver)
        await subscriber.unsubscribe(CHAT, "room:a")
        await subscriber.subscribe(CHAT, "room:a", inbox.deliver)

        await publisher.publish(CHAT, "room:a", b"back")
        await publisher.publish(CHAT, "room:a", BARRIER)

        assert await inbox.until() == [b"back"]

    async def test_closed_broker_gets_nothing(self, broker_factory: BrokerFactory) -> None:
        publisher, closer, stayer = (await broker_factory(), await broker_factory(),
                                     await broker_factory())
        closed, stayed = Inbox(), Inbox()
        await closer.subscribe(CHAT, "room:a", closed.deliver)
        await stayer.subscribe(CHAT, "room:a", stayed.deliver)

        await closer.close()
        await publisher.publish(CHAT, "room:a", b"after close")
        await publisher.publish(CHAT, "room:a", BARRIER)

        assert await stayed.until() == [b"after close"]
        assert closed.bodies == []

    async def test_publish_without_subscribers_succeeds(
        self, broker_factory: BrokerFactory
    ) -> None:
        broker = await broker_factory()

        result = await broker.publish(CHAT, "room:empty", b"nobody home", msg_id="m-1")

        assert isinstance(result, PublishResult)

    async def test_deliver_is_awaited_before_the_next_message_of_the_room(
        self, broker_factory: BrokerFactory
    ) -> None:
        publisher, subscriber = await broker_factory(), await broker_factory()
        events: list[str] = []
        inbox = Inbox()

        async def slow_deliver(delivery: Delivery) -> None:
            events.append(f"start {delivery.body.decode()}")
            for _ in range(3):
                await yield_once()
            events.append(f"end {delivery.body.decode()}")
            await inbox.deliver(delivery)

        await subscriber.subscribe(CHAT, "room:a", slow_deliver)
        await asyncio.gather(*(publisher.publish(CHAT, "room:a", f"m{n}".encode())
                               for n in range(3)))
        await publisher.publish(CHAT, "room:a", BARRIER)
        await inbox.until()

        starts_and_ends = [event for event in events if "barrier" not in event]
        assert starts_and_ends == [f"{step} m{n}" for n in range(3) for step in ("start", "end")]


async def _memory_factory() -> AsyncIterator[BrokerFactory]:
    bus = MemoryBus()

    async def make() -> Broker:
        return MemoryBroker(bus)

    factory = BrokerFactory("memory", make)
    try:
        yield factory
    finally:
        await factory.close_all()


class TestBrokerContract(BrokerContract):
    @pytest.fixture(params=["memory"])
    async def broker_factory(self, request: pytest.FixtureRequest) -> AsyncIterator[BrokerFactory]:
        factories = {"memory": _memory_factory}
        async for factory in factories[request.param]():
            yield factory
