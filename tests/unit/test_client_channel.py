"""One namespace's state across links: losing the link clears only ``connected``/``ready``
and cancels the CONNECT reply awaited on it, keeping recovery state, rooms, tracker and ack
ids; ending the session forgets the recovery state and the rooms."""

from __future__ import annotations

import asyncio
from typing import Any

from client.channel import Channel
from client.recovery import RecoveryState
from client.sequence import SequenceTracker


def linked() -> Channel:
    channel = Channel("/chat", SequenceTracker.starting_at({"room:a": 7}))
    channel.recovery = RecoveryState("pid-1", "offset-9")
    channel.sid = "sid-1"
    channel.recovered = True
    channel.rooms.update({"room:a": None, "room:b": None})
    channel.connected.set()
    channel.ready.set()
    return channel


async def test_a_new_channel_is_unlinked_with_no_session() -> None:
    channel = Channel("/", SequenceTracker())
    assert channel.recovery == RecoveryState()
    assert (channel.sid, channel.recovered, channel.rooms, channel.reply) == (
        None, False, {}, None)
    assert not channel.connected.is_set() and not channel.ready.is_set()
    assert len(channel.acks) == 0


async def test_unlink_keeps_the_session_and_makes_requests_wait() -> None:
    channel = linked()
    pending: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
    ack_id = channel.acks.register(pending)
    reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    channel.reply = reply

    channel.unlink()

    assert not channel.connected.is_set() and not channel.ready.is_set()
    assert reply.cancelled() and channel.reply is None
    assert channel.recovery == RecoveryState("pid-1", "offset-9")
    assert (channel.sid, channel.recovered) == ("sid-1", True)
    assert list(channel.rooms) == ["room:a", "room:b"]
    assert channel.tracker.last("room:a") == 7
    assert channel.acks.resolve(ack_id, ["ok"]) and pending.result() == ["ok"]


async def test_unlink_leaves_an_answered_reply_alone() -> None:
    channel = linked()
    reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    reply.set_result({"sid": "s"})
    channel.reply = reply
    channel.unlink()
    assert reply.result() == {"sid": "s"} and channel.reply is None
    channel.unlink()  # twice is harmless


async def test_reset_session_starts_over_without_rooms() -> None:
    channel = linked()
    channel.reset_session()
    assert channel.recovery == RecoveryState()
    assert (channel.sid, channel.recovered, channel.rooms) == (None, False, {})
    assert channel.tracker.last("room:a") == 7  # positions survive: old messages stay dupes
    assert channel.connected.is_set()  # the link is unlink()'s business


async def test_rooms_keep_join_order() -> None:
    channel = Channel("/chat", SequenceTracker())
    for room in ("room:z", "room:a", "room:m", "room:a"):
        channel.rooms[room] = None
    assert list(channel.rooms) == ["room:z", "room:a", "room:m"]
