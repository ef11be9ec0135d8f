"""The broker contract (:mod:`tests.unit.test_broker_contract`) held against the NATS broker
on a real nats-server with JetStream.

Every test gets its own subject prefix, so its streams and subjects are its own: sequences
start at 1 and no other test's messages reach its subscribers. The streams are deleted when
the test ends. :func:`test_subscribe_returns_only_after_the_server_has_the_sub` checks on the
wire that ``subscribe`` returns only once the server has the SUB: what it waited for answers a
command sent after the SUB on the same connection. Room subscriptions are not nats-py
``Subscription`` objects (:mod:`gateway.nats_client`), so
:func:`test_rooms_are_subscribed_again_after_the_connection_to_nats_is_lost` checks that
nats-py's reconnect still replays them, and only them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest

from devcluster.natsserver import NatsServer
from gateway.broker import Broker, Delivery
from gateway.nats_broker import NatsBroker
from gateway.nats_client import FanoutClient
from shared.light_client import LightClient
from shared.room_log.nats_log import NatsRoomLog
from shared.room_log.streams import LogSettings, ensure_streams, stream_configs
from shared.subjects import Subjects
from tests.support.timing import UNIT
from tests.unit.test_broker_contract import (
    CHAT,
    BrokerContract,
    BrokerFactory,
    InboxContract,
    LogFactory,
    RoomLogContract,
)

pytestmark = pytest.mark.integration


async def _connect(url: str) -> FanoutClient:
    client = FanoutClient()
    await client.connect(servers=[url], connect_timeout=2 * UNIT, max_reconnect_attempts=0)
    return client


async def _nats_factory(url: str) -> AsyncIterator[BrokerFactory]:
    subjects = Subjects(f"t{uuid4().hex[:8]}")
    settings = LogSettings()
    clients: list[FanoutClient] = []
    brokers: list[NatsBroker] = []

    async def make() -> Broker:
        client = await _connect(url)
        clients.append(client)
        broker = NatsBroker(client, subjects, settings)
        brokers.append(broker)
        await broker.start()
        await ensure_streams(client.jetstream(), subjects, settings)
        return broker

    factory = BrokerFactory("nats", make)
    try:
        yield factory
    finally:
        await factory.close_all()
        if clients:
            js = clients[0].jetstream()
            for nsp in sorted(settings.durable):
                with contextlib.suppress(Exception):
                    await js.delete_stream(subjects.log_stream(nsp))
            with contextlib.suppress(Exception):
                await js.delete_stream(subjects.inbox_stream())
        for client in clients:
            await client.close()


class TestNatsBroker(BrokerContract):
    @pytest.fixture(params=["nats"])
    async def broker_factory(
        self, request: pytest.FixtureRequest, nats_server: NatsServer
    ) -> AsyncIterator[BrokerFactory]:
        async for factory in _nats_factory(nats_server.url):
            yield factory

    async def test_prev_of_a_seq_past_the_end_of_the_log(self, log_factory: LogFactory) -> None:
        await super().test_prev_of_a_seq_past_the_end_of_the_log(log_factory)


class TestNatsRoomLog(RoomLogContract, InboxContract):
    """The log alone, on the light client the router uses (no fan-out client, no sink)."""

    @pytest.fixture
    async def log_factory(self, nats_server: NatsServer) -> AsyncIterator[LogFactory]:
        subjects = Subjects(f"t{uuid4().hex[:8]}")
        settings = LogSettings()
        made: list[tuple[LightClient, NatsRoomLog]] = []

        async def make() -> NatsRoomLog:
            client = LightClient()
            await client.connect(servers=[nats_server.url], connect_timeout=2 * UNIT,
                                 max_reconnect_attempts=0)
            log = NatsRoomLog(client, subjects, settings)
            made.append((client, log))
            await log.start()
            await ensure_streams(client.jetstream(), subjects, settings, update=False)
            return log

        try:
            yield make
        finally:
            for client, log in made:
                await log.close()
                for config in stream_configs(subjects, settings):
                    with contextlib.suppress(Exception):
                        await client.jetstream().delete_stream(config.name)
                await client.close()


# --- what the contract cannot see from outside --------------------------------------------


class RecordingProxy:
    """A TCP relay to nats-server that records the bytes its clients sent, in wire order."""

    def __init__(self, host: str, port: int) -> None:
        self._upstream = (host, port)
        self.sent = bytearray()
        self._changed = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"nats://127.0.0.1:{port}"

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        self._writers += [writer, up_writer]
        for task in (self._pump(reader, up_writer, record=True),
                     self._pump(up_reader, writer, record=False)):
            self._tasks.add(asyncio.get_running_loop().create_task(task))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    record: bool) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                if record:
                    self.sent += chunk
                    self._changed.set()
                writer.write(chunk)
                await writer.drain()

    def cut(self) -> None:
        """Drop every relayed connection, as a network fault would (new ones still relay)."""
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def until_sent(self, data: bytes) -> None:
        async with asyncio.timeout(5 * UNIT):
            while data not in self.sent:
                self._changed.clear()
                await self._changed.wait()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.mark.parametrize("durable", [False, True], ids=["ephemeral", "durable"])
async def test_subscribe_returns_only_after_the_server_has_the_sub(
    nats_server: NatsServer, durable: bool
) -> None:
    proxy = RecordingProxy("127.0.0.1", nats_server.port)
    subjects = Subjects(f"t{uuid4().hex[:8]}")
    client = await _connect(await proxy.start())
    settings = LogSettings(durable=frozenset({CHAT} if durable else ()))
    broker = NatsBroker(client, subjects, settings)
    broker.attach(lambda delivery: None)
    try:
        await broker.start()
        if durable:
            await ensure_streams(client.jetstream(), subjects, settings)
        await broker.subscribe(CHAT, "room:a")
        sub = f"SUB {subjects.fanout(CHAT, 'room:a')} ".encode()
        await proxy.until_sent(sub)

        # The reply subscribe waited for answers a command queued behind the SUB on the same
        # connection: the log probe in a durable namespace, else a message to our own inbox.
        if durable:
            proof = f"PUB $JS.API.DIRECT.GET.{subjects.log_stream(CHAT)} ".encode()
        else:
            proof = f"PUB {broker.requests.inbox}".encode()
        at = proxy.sent.index(sub)
        assert proof in proxy.sent[at:]
        assert proof not in proxy.sent[:at]
    finally:
        if durable:
            await client.jetstream().delete_stream(subjects.log_stream(CHAT))
            await client.jetstream().delete_stream(subjects.inbox_stream())
        await broker.close()
        await client.close()
        await proxy.close()


async def test_rooms_are_subscribed_again_after_the_connection_to_nats_is_lost(
    nats_server: NatsServer,
) -> None:
    proxy = RecordingProxy("127.0.0.1", nats_server.port)
    subjects = Subjects(f"t{uuid4().hex[:8]}")
    reconnected = asyncio.Event()

    async def on_reconnect() -> None:
        reconnected.set()

    client = FanoutClient()
    await client.connect(servers=[await proxy.start()], connect_timeout=2 * UNIT,
                         reconnect_time_wait=0.05, max_reconnect_attempts=100,
                         reconnected_cb=on_reconnect)
    publisher = await _connect(f"nats://127.0.0.1:{nats_server.port}")
    broker = NatsBroker(client, subjects, LogSettings(durable=frozenset()))
    got: list[tuple[str, bytes]] = []
    arrived = asyncio.Event()

    def sink(delivery: Delivery) -> None:
        got.append((delivery.room, delivery.body))
        arrived.set()

    broker.attach(sink)
    try:
        await broker.start()
        for room in ("room:kept", "room:left"):
            await broker.subscribe(CHAT, room)
        await broker.unsubscribe(CHAT, "room:left")
        before = len(proxy.sent)
        proxy.cut()
        async with asyncio.timeout(10 * UNIT):
            await reconnected.wait()
        await client.flush()  # the replayed SUBs went out ahead of this PING
        replayed = bytes(proxy.sent[before:])
        assert f"SUB {subjects.fanout(CHAT, 'room:kept')} ".encode() in replayed
        assert subjects.fanout(CHAT, "room:left").encode() not in replayed

        for room in ("room:left", "room:kept"):  # one publisher: delivered in this order
            await publisher.publish(subjects.fanout(CHAT, room), room.encode())
        await publisher.flush()
        async with asyncio.timeout(5 * UNIT):
            await arrived.wait()
        await client.flush()
        assert got == [("room:kept", b"room:kept")]
    finally:
        await broker.close()
        await client.close()
        await publisher.close()
        await proxy.close()
