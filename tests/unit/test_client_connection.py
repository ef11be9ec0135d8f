"""The SDK's connection on a packet-level fake gateway (``Transport.open`` replaced by a
scripted server, so no socket and no real clock is involved): CONNECT of every namespace
with the token and the recovery state, reconnect after a loss to the next URL with the pid
and last offset, re-joins with ``since`` where the session did not come back, terminal ends
(kick, CONNECT_ERROR, HTTP 401) versus retried failures, event routing with offsets
stripped, and calls: re-sent under new ack ids on timeout, re-sent after a reconnect without
using up an attempt, ``rate_limited`` waited out, errors raised as ``RequestFailed``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response

from client import connection as connection_module
from client.channel import Channel
from client.connection import Connection, Options
from client.counters import Counters
from client.dispatch import Callback, Dispatcher
from client.errors import AckTimeout, ClientClosed, ConnectRefused, RequestFailed, TransportLost
from client.feed import Feed
from client.merge import Message
from client.positions import MemoryPositionStore
from client.sequence import SequenceTracker
from client.state import ConnectionState, DisconnectReason
from shared.protocol.packets import Packet, PacketType
from tests.support.timing import UNIT
from tests.unit.test_client_link import FakeTransport

S = ConnectionState
WITHIN = 5 * UNIT
AckAnswer = Callable[[Packet], Any]  # the ack's first argument, or NO_ACK to stay silent
NO_ACK = object()
FAST: dict[str, Any] = {"backoff_base": 0.0, "random": lambda: 0.0, "ack_timeout": 1 * UNIT}
"""Client options for tests: reconnect at once, wait for an ack up to one unit."""


def ok_ack(packet: Packet) -> Any:
    return {"ok": True}


class GatewayTransport(FakeTransport):
    """One transport of the fake gateway: what the client sends is recorded and answered
    by the gateway; the test pushes server packets or drops the connection."""

    def __init__(self, gateway: FakeGateway, url: str) -> None:
        super().__init__()
        self.gateway = gateway
        self.url = url
        self.sent: list[Packet] = []
        self.closed = False

    async def send(self, packet: Packet) -> None:
        if self.closed:
            raise TransportLost("closed")
        self.sent.append(packet)
        self.gateway.answer(self, packet)

    async def close(self) -> None:
        await super().close()
        self.closed = True

    def push(self, packet: Packet) -> None:
        self.incoming.put_nowait(packet)

    def drop(self, why: str = "connection lost") -> None:
        self.incoming.put_nowait(TransportLost(why))

    def events(self, name: str | None = None) -> list[Packet]:
        return [p for p in self.sent if p.type is PacketType.EVENT
                and (name is None or p.data[0] == name)]


@dataclass
class FakeGateway:
    """Takes the place of ``Transport``: ``open`` hands out transports (or raises what
    ``refusals`` holds), CONNECTs are answered with a sid and a pid (the same pid when
    ``recover`` and the client asked for it), requests with ``acks[event]`` (default
    ``{"ok": True}``)."""

    recover: bool = True
    refusals: list[BaseException] = field(default_factory=list)
    connect_errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    acks: dict[str, AckAnswer] = field(default_factory=dict)
    transports: list[GatewayTransport] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    sessions: int = 0

    async def open(self, url: str, *, open_timeout: float, max_size: int | None,
                   answer_pings: Callable[[], bool]) -> GatewayTransport:
        self.opened.append(url)
        if self.refusals:
            raise self.refusals.pop(0)
        transport = GatewayTransport(self, url)
        self.transports.append(transport)
        return transport

    @property
    def current(self) -> GatewayTransport:
        return self.transports[-1]

    def answer(self, transport: GatewayTransport, packet: Packet) -> None:
        if packet.type is PacketType.CONNECT:
            if packet.nsp in self.connect_errors:
                transport.push(Packet(PacketType.CONNECT_ERROR, packet.nsp,
                                      self.connect_errors[packet.nsp]))
                return
            asked = packet.data.get("pid")
            if not (self.recover and asked):
                self.sessions += 1
                asked = f"pid-{self.sessions}"
            transport.push(Packet(PacketType.CONNECT, packet.nsp,
                                  {"sid": f"sid-{len(self.transports)}", "pid": asked}))
        elif packet.type is PacketType.EVENT and packet.id is not None:
            answer = self.acks.get(packet.data[0], ok_ack)
            body = answer(packet)
            if body is not NO_ACK:
                transport.push(Packet(PacketType.ACK, packet.nsp, [body], packet.id))


@dataclass
class Rig:
    gateway: FakeGateway
    connection: Connection
    dispatcher: Dispatcher
    channels: dict[str, Channel]
    handlers: dict[tuple[str, str], list[Callback]]
    delivered: list[Message]
    states: list[S]
    tokens: list[str]

    @property
    def chat(self) -> Channel:
        return self.channels["/chat"]


async def until(done: Callable[[], bool]) -> None:
    """Let the client's tasks run until ``done()``: everything is in memory, so each step
    is a yield to the loop, bounded by ``WITHIN``."""
    async with asyncio.timeout(WITHIN):
        while True:
            if done():
                return
            await asyncio.sleep(0)


def build(gateway: FakeGateway, namespaces: Iterable[str] = ("/chat",),
          urls: tuple[str, ...] = ("ws://a", "ws://b"), **options: Any) -> Rig:
    options = {**FAST, **options}
    tokens: list[str] = []

    def token() -> str:
        tokens.append(f"tok-{len(tokens) + 1}")
        return tokens[-1]

    counters, dispatcher, store = Counters(), Dispatcher(), MemoryPositionStore()
    delivered: list[Message] = []
    channels = {nsp: Channel(nsp, SequenceTracker()) for nsp in namespaces}
    feeds = {nsp: Feed(nsp, ch.tracker, store, counters, dispatcher,
                       lambda room, since, limit: asyncio.sleep(0, {"ok": True}), 10,
                       [delivered.append], [])
             for nsp, ch in channels.items()}
    handlers: dict[tuple[str, str], list[Callback]] = {}
    connection = Connection(urls, token, channels, feeds, handlers, Options(**options),
                            counters, dispatcher)
    states: list[S] = []
    connection.machine.subscribe(lambda old, new: states.append(new))
    return Rig(gateway, connection, dispatcher, channels, handlers, delivered, states, tokens)


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> FakeGateway:
    fake = FakeGateway()
    monkeypatch.setattr(connection_module, "Transport", fake)
    return fake


@pytest.fixture
async def rig(gateway: FakeGateway) -> AsyncIterator[Rig]:
    made = build(gateway)
    try:
        yield made
    finally:
        await made.connection.close()


async def connected(rig: Rig) -> Rig:
    await rig.connection.connect()
    return rig


def test_at_least_one_url_is_needed() -> None:
    with pytest.raises(ValueError, match="URL"):
        Connection([], "t", {}, {}, {}, Options(), Counters(), Dispatcher())


# --- connecting ------------------------------------------------------------------------


async def test_connect_sends_every_namespace_the_token_and_waits_for_the_replies(
        gateway: FakeGateway) -> None:
    rig = build(gateway, namespaces=("/chat", "/notifications"))
    await rig.connection.connect()
    try:
        assert gateway.opened == ["ws://a"]
        assert [(p.type, p.nsp, p.data) for p in gateway.current.sent] == [
            (PacketType.CONNECT, "/chat", {"token": "tok-1"}),
            (PacketType.CONNECT, "/notifications", {"token": "tok-1"})]
        assert rig.states == [S.CONNECTING, S.CONNECTED]
        for channel in rig.channels.values():
            assert channel.sid == "sid-1" and channel.recovery.pid is not None
            assert channel.connected.is_set() and channel.ready.is_set()
            assert not channel.recovered
        assert rig.connection.counters.connects == 1
    finally:
        await rig.connection.close()


async def test_connect_twice_is_refused(rig: Rig) -> None:
    await connected(rig)
    with pytest.raises(RuntimeError, match="connect"):
        await rig.connection.connect()


async def test_recovery_off_tells_the_gateway(gateway: FakeGateway) -> None:
    rig = build(gateway, recovery=False)
    await rig.connection.connect()
    try:
        assert gateway.current.sent[0].data == {"token": "tok-1", "recovery": False}
    finally:
        await rig.connection.close()


async def test_a_refused_namespace_ends_the_first_connect_for_good(gateway: FakeGateway) -> None:
    gateway.connect_errors["/chat"] = {"message": "invalid token", "data": {"code": "x"}}
    rig = build(gateway)
    with pytest.raises(ConnectRefused) as refused:
        await rig.connection.connect()
    assert (refused.value.namespace, refused.value.message) == ("/chat", "invalid token")
    assert rig.connection.state is S.DISCONNECTED
    assert rig.connection.machine.reason == DisconnectReason(
        "connect_error", "invalid token", "/chat", {"code": "x"})
    assert gateway.current.closed


async def test_a_first_connect_that_fails_raises_the_transport_error(
        gateway: FakeGateway) -> None:
    gateway.refusals.append(OSError("connection refused"))
    rig = build(gateway)
    with pytest.raises(OSError, match="refused"):
        await rig.connection.connect()
    assert rig.connection.state is S.DISCONNECTED
    reason = rig.connection.machine.reason
    assert reason is not None and reason.kind == "transport" and not reason.terminal


async def test_a_connect_reply_without_a_sid_is_a_broken_transport(gateway: FakeGateway) -> None:
    rig = build(gateway)
    original = gateway.answer

    def no_sid(transport: GatewayTransport, packet: Packet) -> None:
        if packet.type is PacketType.CONNECT:
            transport.push(Packet(PacketType.CONNECT, packet.nsp, {"pid": "p"}))
        else:
            original(transport, packet)

    gateway.answer = no_sid  # type: ignore[method-assign]
    with pytest.raises(TransportLost, match="without sid"):
        await rig.connection.connect()
    assert gateway.current.closed


# --- reconnecting ----------------------------------------------------------------------


async def test_a_lost_transport_reconnects_to_the_next_url_and_recovers(rig: Rig) -> None:
    await connected(rig)
    first = rig.gateway.current
    pid = rig.chat.recovery.pid
    first.push(Packet(PacketType.EVENT, "/chat", ["typing:start", {"u": 1}, "offset-7"]))
    await until(lambda: rig.chat.recovery.offset == "offset-7")
    first.drop()
    await until(lambda: len(rig.gateway.transports) == 2 and rig.connection.state is S.CONNECTED)

    assert rig.gateway.opened == ["ws://a", "ws://b"]
    assert rig.gateway.current.sent[0].data == {"token": "tok-2", "pid": pid,
                                                "offset": "offset-7"}
    assert rig.states == [S.CONNECTING, S.CONNECTED, S.RECONNECTING, S.CONNECTED]
    assert rig.chat.recovered and rig.chat.sid == "sid-2"
    c = rig.connection.counters
    assert (c.connects, c.reconnect_attempts, c.recoveries, c.recovery_misses) == (2, 1, 1, 0)
    assert rig.gateway.current.events() == []  # nothing to re-join


async def test_a_session_that_did_not_come_back_rejoins_its_rooms_with_since(
        rig: Rig) -> None:
    await connected(rig)
    rig.chat.rooms.update({"room:a": None, "room:b": None})
    rig.chat.tracker.receive({"room": "room:a", "seq": 4, "prev": 0})
    rig.gateway.recover = False
    rig.gateway.current.drop()
    await until(lambda: len(rig.gateway.transports) == 2 and rig.connection.state is S.CONNECTED)

    joins = [p.data for p in rig.gateway.current.events("room:join")]
    assert joins == [["room:join", {"room": "room:a", "since": 4}],
                     ["room:join", {"room": "room:b"}]]
    assert not rig.chat.recovered
    c = rig.connection.counters
    assert (c.recoveries, c.recovery_misses, c.rejoins) == (0, 1, 2)


async def test_a_room_the_gateway_refuses_to_rejoin_is_dropped(rig: Rig) -> None:
    await connected(rig)
    rig.chat.rooms.update({"room:a": None, "room:gone": None})
    rig.gateway.recover = False
    rig.gateway.acks["room:join"] = lambda p: (
        {"ok": False, "error": {"code": "forbidden", "message": "no"}}
        if p.data[1]["room"] == "room:gone" else {"ok": True})
    rig.gateway.current.drop()
    await until(lambda: len(rig.gateway.transports) == 2 and rig.connection.state is S.CONNECTED)
    assert list(rig.chat.rooms) == ["room:a"]
    assert rig.connection.counters.rejoins == 1


async def test_failed_attempts_are_retried_and_the_token_asked_again(rig: Rig) -> None:
    await connected(rig)
    rig.gateway.refusals += [OSError("down"), TimeoutError(), TransportLost("no open")]
    rig.gateway.current.drop()
    await until(lambda: len(rig.gateway.transports) == 2 and rig.connection.state is S.CONNECTED)
    assert rig.gateway.opened == ["ws://a", "ws://b", "ws://a", "ws://b", "ws://a"]
    assert rig.connection.counters.reconnect_attempts == 4
    assert rig.tokens == ["tok-1", "tok-2", "tok-3", "tok-4", "tok-5"]


async def test_http_401_on_reconnect_ends_the_session(rig: Rig) -> None:
    await connected(rig)
    rig.chat.rooms["room:a"] = None
    rig.gateway.refusals.append(InvalidStatus(Response(401, "Unauthorized", Headers())))
    rig.gateway.current.drop()
    await until(lambda: rig.connection.state is S.DISCONNECTED)
    assert rig.connection.machine.reason == DisconnectReason("connect_error", "HTTP 401")
    assert rig.chat.rooms == {} and rig.chat.recovery.pid is None


async def test_a_connect_error_on_reconnect_is_terminal(rig: Rig) -> None:
    await connected(rig)
    rig.gateway.connect_errors["/chat"] = {"message": "token expired"}
    rig.gateway.current.drop()
    await until(lambda: rig.connection.state is S.DISCONNECTED)
    reason = rig.connection.machine.reason
    assert reason is not None and reason.kind == "connect_error" and reason.terminal
    assert reason.message == "token expired"


async def test_a_server_disconnect_ends_the_session_and_wakes_waiting_calls(rig: Rig) -> None:
    await connected(rig)
    rig.chat.rooms["room:a"] = None
    rig.gateway.acks["message:send"] = lambda p: NO_ACK
    pending = asyncio.ensure_future(rig.connection.request(rig.chat, "message:send", {}))
    await until(lambda: bool(rig.gateway.current.events("message:send")))
    rig.gateway.current.push(Packet(PacketType.DISCONNECT, "/chat"))
    with pytest.raises(ClientClosed, match="server_disconnect"):
        await pending
    assert rig.connection.machine.reason == DisconnectReason(
        "server_disconnect", "io server disconnect", "/chat")
    assert rig.chat.rooms == {} and len(rig.gateway.transports) == 1
    with pytest.raises(ClientClosed):
        await rig.connection.emit(rig.chat, ["x"])


# --- packets from the gateway ------------------------------------------------------------


async def test_events_reach_their_handlers_without_the_offset(rig: Rig) -> None:
    seen: list[tuple[Any, ...]] = []
    rig.handlers[("/chat", "presence:update")] = [lambda *args: seen.append(args)]
    await connected(rig)
    transport = rig.gateway.current
    transport.push(Packet(PacketType.EVENT, "/chat", ["presence:update", {"n": 1}, "off-1"]))
    transport.push(Packet(PacketType.EVENT, "/other", ["presence:update", {"n": 2}, "off-2"]))
    transport.push(Packet(PacketType.EVENT, "/chat", ["unhandled", "off-3"]))
    await until(lambda: rig.chat.recovery.offset == "off-3")
    await rig.dispatcher.drain()
    assert seen == [({"n": 1},)]
    assert rig.connection.counters.offsets_received == 2


async def test_messages_go_to_the_feed_and_an_event_asking_for_an_ack_gets_one(
        rig: Rig) -> None:
    await connected(rig)
    transport = rig.gateway.current
    message = {"room": "room:a", "seq": 1, "prev": 0, "text": "hi"}
    transport.push(Packet(PacketType.EVENT, "/chat", ["message:received", message, "off"]))
    transport.push(Packet(PacketType.EVENT, "/chat", ["ping:me", "arg"], 9))
    await until(lambda: any(p.type is PacketType.ACK for p in transport.sent))
    await until(lambda: rig.delivered == [message])
    assert [p for p in transport.sent if p.type is PacketType.ACK] == [
        Packet(PacketType.ACK, "/chat", [], 9)]


# --- calls -----------------------------------------------------------------------------


async def test_a_request_returns_the_ack_and_raises_failures(rig: Rig) -> None:
    await connected(rig)
    rig.gateway.acks["room:join"] = lambda p: {"ok": True, "room": "room:a"}
    assert await rig.connection.request(rig.chat, "room:join", {"room": "room:a"}) == {
        "ok": True, "room": "room:a"}
    rig.gateway.acks["room:join"] = lambda p: {
        "ok": False, "error": {"code": "forbidden", "message": "not yours"}}
    with pytest.raises(RequestFailed) as failed:
        await rig.connection.request(rig.chat, "room:join", {"room": "room:b"})
    assert (failed.value.code, failed.value.message) == ("forbidden", "not yours")
    rig.gateway.acks["room:join"] = lambda p: "garbage"
    with pytest.raises(RequestFailed) as odd:
        await rig.connection.request(rig.chat, "room:join", {"room": "room:c"})
    assert odd.value.code == "internal"


async def test_rate_limited_answers_are_waited_out_with_the_same_payload(rig: Rig) -> None:
    await connected(rig)
    answers = iter([{"ok": False, "error": {"code": "rate_limited", "message": "slow",
                                            "retry_after_ms": 1}},
                    {"ok": True, "seq": 3}])
    rig.gateway.acks["message:send"] = lambda p: next(answers)
    payload = {"room": "room:a", "text": "hi", "id": "m1"}
    assert await rig.connection.request(rig.chat, "message:send", payload) == {
        "ok": True, "seq": 3}
    sends = rig.gateway.current.events("message:send")
    assert [p.data for p in sends] == [["message:send", payload]] * 2
    assert sends[0].id != sends[1].id


async def test_rate_limited_without_retry_after_is_raised(rig: Rig) -> None:
    await connected(rig)
    rig.gateway.acks["message:send"] = lambda p: {
        "ok": False, "error": {"code": "rate_limited", "message": "slow"}}
    with pytest.raises(RequestFailed, match="rate_limited"):
        await rig.connection.request(rig.chat, "message:send", {})
    assert len(rig.gateway.current.events("message:send")) == 1


async def test_a_timed_out_call_is_resent_under_a_new_id_and_a_late_ack_counts(
        rig: Rig) -> None:
    await connected(rig)
    attempts: list[Packet] = []

    def ack_first_when_second_arrives(packet: Packet) -> Any:
        attempts.append(packet)
        if len(attempts) == 2:
            rig.gateway.current.push(Packet(PacketType.ACK, "/chat", ["late"], attempts[0].id))
        return NO_ACK

    rig.gateway.acks["work"] = ack_first_when_second_arrives
    assert await rig.connection.call(rig.chat, ["work", 1], 0.01 * UNIT, 3) == "late"
    assert [p.data for p in attempts] == [["work", 1]] * 2
    assert attempts[0].id != attempts[1].id
    assert rig.connection.counters.ack_retries == 1
    assert len(rig.chat.acks) == 0  # every attempt's id forgotten


async def test_a_call_without_any_ack_times_out_after_its_retries(rig: Rig) -> None:
    await connected(rig)
    rig.gateway.acks["work"] = lambda p: NO_ACK
    with pytest.raises(AckTimeout) as timed_out:
        await rig.connection.call(rig.chat, ["work"], 0.01 * UNIT, 2)
    assert timed_out.value.attempts == 3
    assert len(rig.gateway.current.events("work")) == 3
    assert rig.connection.counters.ack_retries == 2


async def test_a_call_in_flight_during_a_reconnect_goes_again_without_using_an_attempt(
        rig: Rig) -> None:
    await connected(rig)
    rig.gateway.acks["work"] = lambda p: NO_ACK
    call = asyncio.ensure_future(rig.connection.call(rig.chat, ["work"], 10 * UNIT, 0))
    await until(lambda: bool(rig.gateway.current.events("work")))
    rig.gateway.acks["work"] = lambda p: "done"
    rig.gateway.current.drop()
    assert await call == "done"
    assert [len(t.events("work")) for t in rig.gateway.transports] == [1, 1]
    assert rig.connection.counters.ack_retries == 0


async def test_emit_sends_an_event_without_an_ack_id(rig: Rig) -> None:
    await connected(rig)
    await rig.connection.emit(rig.chat, ["typing:start", {"room": "room:a"}])
    assert rig.gateway.current.events() == [
        Packet(PacketType.EVENT, "/chat", ["typing:start", {"room": "room:a"}])]


# --- closing ---------------------------------------------------------------------------


async def test_close_leaves_every_namespace_and_a_later_connect_starts_over(
        gateway: FakeGateway) -> None:
    rig = build(gateway, namespaces=("/chat", "/notifications"))
    await rig.connection.connect()
    rig.chat.rooms["room:a"] = None
    transport = gateway.current
    await rig.connection.close()
    assert [(p.type, p.nsp) for p in transport.sent[-2:]] == [
        (PacketType.DISCONNECT, "/chat"), (PacketType.DISCONNECT, "/notifications")]
    assert transport.closed
    assert rig.connection.state is S.DISCONNECTED
    assert rig.connection.machine.reason == connection_module.CLIENT_CLOSE
    assert rig.chat.rooms == {} and rig.chat.recovery.pid is None
    await rig.connection.close()  # twice is harmless

    await rig.connection.connect()
    try:
        assert gateway.current.sent[0].data == {"token": "tok-2"}  # a new session: no pid
        assert rig.states[-1] is S.CONNECTED
    finally:
        await rig.connection.close()
