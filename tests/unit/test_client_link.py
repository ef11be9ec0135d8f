"""One connection's life on a fake transport: every packet handed over in order until the
handler ends the session, the transport fails or the handler breaks; the transport is closed
and ``ended`` resolves exactly once with why."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from client.errors import TransportLost
from client.link import Link
from client.state import DisconnectReason
from client.transport import Transport
from shared.protocol.packets import Packet, PacketType
from tests.support.timing import UNIT


class FakeTransport:
    """Packets (or an error) the test feeds in; closes counted."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[Packet | Exception] = asyncio.Queue()
        self.closes = 0

    async def receive(self) -> Packet:
        item = await self.incoming.get()
        if isinstance(item, Exception):
            raise item
        return item

    async def close(self) -> None:
        self.closes += 1


def event(n: int) -> Packet:
    return Packet(PacketType.EVENT, "/chat", ["e", n])


KICKED = DisconnectReason("server_disconnect", "kicked", "/chat")


async def ended(link: Link) -> DisconnectReason:
    async with asyncio.timeout(5 * UNIT):
        return await asyncio.shield(link.ended)


async def test_packets_are_handed_over_in_order_until_the_handler_ends_it() -> None:
    transport = FakeTransport()
    seen: list[Packet] = []

    def on_packet(packet: Packet) -> DisconnectReason | None:
        seen.append(packet)
        return KICKED if packet.type is PacketType.DISCONNECT else None

    link = Link(cast(Transport, transport), on_packet)
    assert link.alive and link.transport is cast(Transport, transport)
    for item in (event(1), event(2), Packet(PacketType.DISCONNECT, "/chat"), event(3)):
        transport.incoming.put_nowait(item)
    assert await ended(link) is KICKED
    assert seen == [event(1), event(2), Packet(PacketType.DISCONNECT, "/chat")]
    assert not link.alive and transport.closes == 1


async def test_a_lost_transport_ends_the_link_as_a_transport_loss() -> None:
    transport = FakeTransport()
    link = Link(cast(Transport, transport), lambda packet: None)
    transport.incoming.put_nowait(event(1))
    transport.incoming.put_nowait(TransportLost("ping timeout"))
    reason = await ended(link)
    assert reason == DisconnectReason("transport", "ping timeout")
    assert not reason.terminal  # the client reconnects
    assert transport.closes == 1


async def test_a_bug_in_the_handler_drops_the_transport_not_the_client(
        caplog: pytest.LogCaptureFixture) -> None:
    transport = FakeTransport()

    def on_packet(packet: Packet) -> DisconnectReason | None:
        raise KeyError("bug")

    link = Link(cast(Transport, transport), on_packet)
    transport.incoming.put_nowait(event(1))
    reason = await ended(link)
    assert reason.kind == "transport" and reason.message.startswith("internal error: KeyError")
    assert transport.closes == 1
    assert "packet handling failed" in caplog.text


async def test_close_stops_the_reader_and_ends_with_the_given_reason() -> None:
    transport = FakeTransport()
    seen: list[Packet] = []
    link = Link(cast(Transport, transport), lambda packet: seen.append(packet))
    await asyncio.sleep(0)  # the reader waits in receive()
    closing = DisconnectReason("client_close", "bye")
    await link.close(closing)
    assert await ended(link) is closing
    assert not link.alive and transport.closes == 1
    transport.incoming.put_nowait(event(1))
    await asyncio.sleep(0)
    assert seen == []


async def test_ended_resolves_once_the_first_reason_wins() -> None:
    transport = FakeTransport()
    link = Link(cast(Transport, transport), lambda packet: KICKED)
    transport.incoming.put_nowait(event(1))
    assert await ended(link) is KICKED
    await link.close(DisconnectReason("client_close"))  # after the end: harmless
    assert link.ended.result() is KICKED
    assert transport.closes == 2  # closing a closed transport is the transport's business
