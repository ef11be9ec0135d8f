"""A session handed from one gateway to another, as pure state, and the polling channel's
part in it (frozen while it is handed over, then forwarding, or thawed if it stays)."""

from __future__ import annotations

import pytest

from gateway.connection import Connection
from gateway.connection_handoff import ConnectionHandoff
from gateway.limits import LimitClass
from gateway.polling import PollingChannel
from gateway.session import Session, SessionConfig
from gateway.session_handoff import Handoff
from gateway.takeover import Movable
from gateway.takeover_state import (
    BadState,
    SessionState,
    SocketState,
    export_buckets,
    import_buckets,
    import_meters,
)
from shared.abuse import AbuseMeter
from shared.ratelimit import TokenBucket
from tests.unit.test_polling import Handler, answer, channel_with_handler
from tests.unit.test_session import client, connected, identity


def test_a_session_state_round_trips_with_binary_packets_and_identities() -> None:
    who = identity("alice", rooms=["room:*"])
    state = SessionState(
        "eio~gw-1", who, {"x-api-key": "k"},
        [SocketState("/chat", "s1", who, ["room:a", "user:alice"], "pid-1", True,
                     {"n": 1}, "12", {"room:a": 0.5})],
        {"chat": (1.0, 5.0, 2.5)}, {"request": (100, 10.0, [0.1, 3.0])},
        ["42/chat,[\"x\"]", b"\x00\x01"], ["3"])
    again = SessionState.decode(state.encode())
    assert again == state
    assert again.sockets[0].identity.token == who.token


@pytest.mark.parametrize("raw", [b"", b"{", b'{"v": 2}', b'{"v": 1, "sid": "s"}',
                                 b'{"v":1,"sid":"s","identity":null,"headers":{},'
                                 b'"sockets":[{"identity":null}],"buckets":{},"meters":{},'
                                 b'"packets":[],"posted":[]}'])
def test_anything_else_is_a_bad_state_not_a_crash(raw: bytes) -> None:
    with pytest.raises(BadState):
        SessionState.decode(raw)


def test_limiters_travel_as_ages_not_clock_readings() -> None:
    buckets = {LimitClass.CHAT: TokenBucket(2.0, 10.0, 1.0, 100.0)}
    exported = export_buckets(buckets, 102.0)  # refilled to now before it leaves
    assert exported == {"chat": (2.0, 10.0, 5.0)}
    bucket = import_buckets(exported, 7.0)[LimitClass.CHAT]
    assert (bucket.tokens, bucket.updated) == (5.0, 7.0)
    meter = import_meters({"request": (3, 10.0, [1.0, 4.0])}, 50.0)[LimitClass.REQUEST]
    assert list(meter.rejections) == [49.0, 46.0] and meter.threshold == 3
    assert isinstance(meter, AbuseMeter)


def test_a_session_hands_over_its_sockets_and_the_other_core_takes_them_in() -> None:
    owner = connected("/chat")
    owner.joined("room:a")
    owner.now = 5.0
    assert owner.session.settled()
    state = owner.session.hand_over(5.0, {"/chat": "42"})
    assert owner.session.closed and owner.session.sockets == {}
    (moved,) = state.sockets
    assert moved.offset == "42" and "room:a" in moved.rooms and moved.durable
    taker = client(now=100.0)
    (socket,) = taker.session.take_over(SessionState.decode(state.encode()), 100.0)
    assert socket.sid == moved.sid and socket.pid == moved.pid
    assert "room:a" in socket.rooms and taker.session.sockets["/chat"] is socket
    assert taker.session.next_deadline() > 100.0  # the heartbeat, no CONNECT deadline


def test_a_session_taken_over_before_any_connect_keeps_its_connect_deadline() -> None:
    owner = client()
    state = owner.session.hand_over(1.0, {})
    taker = client(config=SessionConfig(ping_interval_ms=1_000_000), now=50.0)
    assert taker.session.take_over(state, 50.0) == []
    assert taker.session.next_deadline() == 50.0 + 45.0


def test_a_session_with_a_half_assembled_binary_packet_is_not_settled() -> None:
    c = connected("/chat")
    c.send('451-/chat,["message:send",{"room":"room:a","text":"","attachment":'
           '{"_placeholder":true,"num":0}}]')
    assert not c.session.settled()


async def test_a_frozen_channel_holds_polls_and_keeps_posts_then_thaws_in_order() -> None:
    channel, handler, _ = channel_with_handler()
    channel.freeze()
    poll = channel.get(())
    channel.transport.write(b"\x81\x012")  # a ping written meanwhile waits
    assert not isinstance(poll, type(None)) and channel.waiting == ["2"]
    assert (await answer(channel.post(b"3\x1e42[\"a\"]", ()))).body == b"ok"
    assert handler.received == []
    channel.thaw()
    assert handler.received == ["3", '42["a"]']
    assert (await answer(poll)).body == b"2"


async def test_a_moved_channel_answers_its_poll_with_a_noop_and_gives_up_its_packets() -> None:
    channel, _, _ = channel_with_handler()
    channel.freeze()
    poll = channel.get(())
    channel.transport.write(b"\x81\x012")
    assert channel.moved("gw-2") == ["2"]
    assert (await answer(poll)).body == b"6"
    assert channel.moved_to == "gw-2" and channel.handler is None
    channel.lose(1006)
    assert not channel.closed


async def test_a_preloaded_channel_answers_the_owed_packets_first() -> None:
    channel = PollingChannel("sid-9", lambda _: None)
    channel.handler = Handler()
    channel.preload(["42[\"owed\"]"])
    channel.transport.write(b"\x81\x012")
    assert (await answer(channel.get(()))).body == b'42["owed"]\x1e2'


def test_connections_and_sessions_are_movable() -> None:
    assert issubclass(Connection, ConnectionHandoff) and issubclass(Session, Handoff)
    assert hasattr(Movable, "_is_runtime_protocol")
