"""The presence service's shell, run whole on the in-memory store with a fake NATS client: a
notice from the work queue is stored, then acknowledged, and its events reach the room's
fan-out subject; a failed write sends the batch back; ``room:presence`` is answered; a clean
stop says ``bye``. Time is a fake clock the test moves; every wait is bounded by UNIT."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from prometheus_client import CollectorRegistry

from presence.memory_store import MemoryPresenceStore
from presence.metrics import PresenceMetrics
from presence.service import PresenceService
from presence.store import BYE, Change
from shared.config import PresenceSettings
from shared.presence_wire import GatewayBoot, SocketRecord, encode, pack, room_key
from shared.subjects import Subjects
from tests.support.fake_clock import FakeClock
from tests.support.timing import UNIT

SETTINGS = PresenceSettings(instance_id="p1", subject_prefix="t", grace_s=5.0,
                            replica_ttl_s=3.0, list_max=10)
LOBBY = room_key("/chat", "room:a")
FAN = Subjects("t").fanout("/chat", "room:a")


class FakeMsg:
    def __init__(self, data: bytes, reply: str = "") -> None:
        self.data = data
        self.reply = reply
        self.settled: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.answer: bytes | None = None

    async def ack(self) -> None:
        self.settled.set_result("ack")

    async def nak(self, delay: float | None = None) -> None:
        self.settled.set_result("nak")

    async def respond(self, body: bytes) -> None:
        self.answer = body


class FakeQueue:
    """The work queue's pull subscription."""

    def __init__(self) -> None:
        self.waiting: asyncio.Queue[FakeMsg] = asyncio.Queue()

    async def fetch(self, batch: int, timeout: float) -> list[FakeMsg]:  # noqa: ASYNC109 - nats-py's
        try:
            msgs = [await asyncio.wait_for(self.waiting.get(), timeout)]
        except TimeoutError:
            raise NatsTimeoutError from None
        while not self.waiting.empty() and len(msgs) < batch:
            msgs.append(self.waiting.get_nowait())
        return msgs

    async def unsubscribe(self) -> None:
        pass


class FakeNats:
    """What the service asks of its NATS client, recorded."""

    def __init__(self) -> None:
        self.queue = FakeQueue()
        self.published: list[tuple[str, bytes]] = []
        self.on_query: Callable[[Any], Any] | None = None
        self._new = asyncio.Event()

    def jetstream(self, timeout: float = 5.0) -> FakeNats:
        return self  # add_stream and pull_subscribe, as a JetStream context

    async def add_stream(self, config: object) -> None:
        pass

    async def pull_subscribe(self, *args: object, **kwargs: object) -> FakeQueue:
        return self.queue

    async def subscribe(self, subject: str, queue: str, cb: Callable[[Any], Any]) -> None:
        self.on_query = cb

    async def publish(self, subject: str, body: bytes) -> None:
        self.published.append((subject, body))
        self._new.set()

    async def heard(self, count: int) -> list[tuple[str, str, dict[str, Any]]]:
        """The first ``count`` publishes, once they are out (bounded wait)."""
        async with asyncio.timeout(5 * UNIT):
            while len(self.published) < count:
                self._new.clear()
                await self._new.wait()
        return [(subject, *orjson.loads(body)) for subject, body in self.published[:count]]


class FakeRegistry:
    def __init__(self) -> None:
        self.live = {"gw1"}
        self.on_gateway_gone: Callable[[str], None] | None = None



class Harness:
    def __init__(self, store: type[MemoryPresenceStore] = MemoryPresenceStore) -> None:
        self.clock = FakeClock()
        self.store = store(self.clock, 60.0, 5.0)
        self.nats = FakeNats()
        self.registry = FakeRegistry()
        self.service = PresenceService(
            self.nats, SETTINGS, PresenceMetrics(CollectorRegistry()),  # type: ignore[arg-type]
            self.store, self.registry, clock=self.clock)  # type: ignore[arg-type]

    async def send(self, *notices: SocketRecord | GatewayBoot) -> FakeMsg:
        msg = FakeMsg(pack([encode(notice) for notice in notices]))
        await self.nats.queue.waiting.put(msg)
        return msg

    async def settled(self, msg: FakeMsg) -> str:
        async with asyncio.timeout(5 * UNIT):
            return await msg.settled


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    made = Harness()
    await made.service.start()
    try:
        yield made
    finally:
        await made.service.stop()


def alice(seq: int = 1, alive: bool = True) -> SocketRecord:
    return SocketRecord("gw1", "b1", "c1", "alice", frozenset({LOBBY}) if alive else frozenset(),
                        alive, seq, 100.0 + seq)


async def test_a_queued_notice_is_stored_acknowledged_and_announced(harness: Harness) -> None:
    msg = await harness.send(alice())

    assert await harness.settled(msg) == "ack"
    assert await harness.nats.heard(2) == [
        (FAN, "presence:update", {"room": "room:a", "user": "alice", "status": "joined"}),
        (FAN, "presence:update", {"user": "alice", "status": "online"}),
    ]
    assert harness.service.ready


async def test_a_departure_goes_out_once_the_grace_has_passed_on_the_clock(
    harness: Harness,
) -> None:
    await harness.settled(await harness.send(alice()))
    await harness.nats.heard(2)

    await harness.settled(await harness.send(alice(seq=2, alive=False)))
    harness.clock.now += SETTINGS.grace_s
    # Any change wakes the timers, which then find the clock past the deadline.
    await harness.settled(await harness.send(GatewayBoot("gw-other", "x", 1.0)))

    heard = await harness.nats.heard(4)
    assert [data for _, _, data in heard[2:]] == [
        {"user": "alice", "status": "offline"},
        {"room": "room:a", "user": "alice", "status": "left"}]


async def test_room_presence_is_answered_from_the_state(harness: Harness) -> None:
    await harness.settled(await harness.send(alice()))
    await harness.nats.heard(2)
    query = FakeMsg(b'{"namespace":"/chat","room":"room:a"}', reply="inbox")

    assert harness.nats.on_query is not None
    await harness.nats.on_query(query)

    assert query.answer is not None and orjson.loads(query.answer) == {
        "ok": True, "room": "room:a", "users": ["alice"], "count": 1, "truncated": False}


class FailingStore(MemoryPresenceStore):
    async def store_record(self, record: SocketRecord) -> bool:
        raise TimeoutError("the bucket did not answer")


async def test_a_batch_whose_write_failed_goes_back_to_the_queue() -> None:
    made = Harness(FailingStore)
    await made.service.start()
    try:
        assert await made.settled(await made.send(alice())) == "nak"
        assert made.nats.published == []
    finally:
        await made.service.stop()


async def test_a_clean_stop_says_bye_in_the_store() -> None:
    made = Harness()
    await made.service.start()
    await made.service.stop()

    found: list[Change] = []
    async for change in made.store.follow():
        if change is None:
            break
        found.append(change)
    assert Change("r", ("p1",), BYE) in found
    assert not made.service.ready
