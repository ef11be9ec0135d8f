"""The connection's pump without a task per connection: messages whose actions wait (a room
subscription held back here) keep every later message of that connection behind them, in
order, with reading paused past the backlog bound; a connection that drops while an action
waits still ends its session once the action is done. An in-process gateway on the memory
broker, on a real loopback socket."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator

import pytest

from gateway.connection import BACKLOG_LIMIT
from gateway.memory_broker import MemoryBroker, MemoryBus
from gateway.server import Gateway
from shared.config import GatewaySettings, load
from tests.support.timing import UNIT
from tests.support.tokens import SECRET, make_token


class GatedBroker(MemoryBroker):
    """Subscriptions wait for ``gate``: a NATS round trip that takes as long as the test says."""

    def __init__(self, bus: MemoryBus) -> None:
        super().__init__(bus)
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def subscribe(self, nsp: str, room: str) -> None:
        if room.startswith("room:"):
            self.waiting.set()
            await self.gate.wait()
        await super().subscribe(nsp, room)


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def send(self, text: str) -> None:
        payload = text.encode()
        head = (struct.pack("!BB", 0x81, 0x80 | len(payload)) if len(payload) < 126
                else struct.pack("!BBH", 0x81, 0x80 | 126, len(payload)))
        self.writer.write(head + b"\0\0\0\0" + payload)  # an all-zero mask

    async def recv(self) -> str:
        head = await asyncio.wait_for(self.reader.readexactly(2), 5 * UNIT)
        length = head[1] & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        return (await self.reader.readexactly(length)).decode()


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[Gateway, GatedBroker, int]]:
    settings = load(GatewaySettings, {"SB_JWT_SECRET": SECRET, "SB_HOST": "127.0.0.1",
                                      "SB_PORT": "0", "SB_REQUEST_RATE": "10000",
                                      "SB_REQUEST_BURST": "10000"})
    broker = GatedBroker(MemoryBus())
    gw = Gateway(settings, broker, None)
    server = await gw.start()
    try:
        yield gw, broker, int(server.sockets[0].getsockname()[1])
    finally:
        broker.gate.set()
        await gw.stop()


async def open_live(port: int) -> Client:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: t\r\n"
                 b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    client = Client(reader, writer)
    assert (await client.recv()).startswith("0{")
    client.send("40/live-updates," + json.dumps({"token": make_token("pump")}))
    assert (await client.recv()).startswith('40/live-updates,{"sid"')
    return client


def join(ack: int) -> str:
    return f'42/live-updates,{ack}["room:join",{{"room":"room:r{ack}"}}]'


def leave(ack: int) -> str:
    return f'42/live-updates,{ack}["room:leave",{{"room":"room:never"}}]'


async def test_messages_behind_a_waiting_action_are_answered_after_it_in_order(
    gateway: tuple[Gateway, GatedBroker, int],
) -> None:
    _, broker, port = gateway
    client = await open_live(port)
    client.send(join(1))
    for ack in range(2, BACKLOG_LIMIT + 40):  # past the bound: reading pauses, nothing is lost
        client.send(leave(ack))
    await asyncio.wait_for(broker.waiting.wait(), 5 * UNIT)
    broker.gate.set()

    acks = [int((await client.recv()).split(",", 1)[1].split("[", 1)[0])
            for _ in range(BACKLOG_LIMIT + 39)]

    assert acks == list(range(1, BACKLOG_LIMIT + 40))
    client.writer.close()


async def test_a_drop_while_an_action_waits_ends_the_session_after_it(
    gateway: tuple[Gateway, GatedBroker, int],
) -> None:
    gw, broker, port = gateway
    client = await open_live(port)
    client.send(join(1))
    await asyncio.wait_for(broker.waiting.wait(), 5 * UNIT)
    client.writer.transport.abort()
    await asyncio.sleep(0.05 * UNIT)
    assert len(gw.connections) == 1  # the join is still in progress

    broker.gate.set()
    for _ in range(100):
        if not gw.connections:
            break
        await asyncio.sleep(0.01 * UNIT)
    assert not gw.connections
