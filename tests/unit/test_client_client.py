"""``SwitchboardClient``, the SDK's API, on the packet-level fake gateway of the connection
tests: namespaces and URLs as given, each method's payload (``join`` with ``since`` from the
stored position, ``send`` with one idempotency key, ``history`` with only the given keys),
callbacks per namespace, the state accessors, and unknown namespaces refused."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from client import connection as connection_module
from client.client import SwitchboardClient
from client.errors import AckTimeout, RequestFailed
from client.positions import MemoryPositionStore
from client.sequence import Gap
from client.state import ConnectionState
from shared.protocol.packets import Packet, PacketType
from tests.support.timing import UNIT
from tests.unit.test_client_connection import (
    FAST,
    NO_ACK,
    FakeGateway,
    GatewayTransport,
    until,
)

S = ConnectionState


class PingGateway(FakeGateway):
    """Also keeps the ``answer_pings`` each transport was opened with."""

    answer_pings: Callable[[], bool] | None = None

    async def open(self, url: str, *, open_timeout: float, max_size: int | None,
                   answer_pings: Callable[[], bool]) -> GatewayTransport:
        self.answer_pings = answer_pings
        return await super().open(url, open_timeout=open_timeout, max_size=max_size,
                                  answer_pings=answer_pings)


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> PingGateway:
    fake = PingGateway()
    monkeypatch.setattr(connection_module, "Transport", fake)
    return fake


Factory = Callable[..., SwitchboardClient]


@pytest.fixture
async def make(gateway: PingGateway) -> AsyncIterator[Factory]:
    async with contextlib.AsyncExitStack() as made:
        def build(*args: Any, **options: Any) -> SwitchboardClient:
            client = SwitchboardClient(*(args or ("http://gw:8001", "tok")),
                                       **{**FAST, **options})
            made.push_async_callback(client.close)
            return client

        yield build


async def connected(make: Factory, **options: Any) -> SwitchboardClient:
    client = make(**options)
    await client.connect()
    return client


def requests(gateway: FakeGateway, event: str) -> list[tuple[str, Any]]:
    return [(p.nsp, p.data[1]) for p in gateway.current.events(event)]


# --- construction ----------------------------------------------------------------------


async def test_urls_become_engine_io_websocket_urls_tried_in_turn(
        make: Factory, gateway: PingGateway) -> None:
    client = make(["http://a:1", "https://b:2"], "tok")
    await client.connect()
    gateway.current.drop()
    await until(lambda: len(gateway.transports) == 2 and client.state is S.CONNECTED)
    assert gateway.opened == ["ws://a:1/socket.io/?EIO=4&transport=websocket",
                              "wss://b:2/socket.io/?EIO=4&transport=websocket"]


def test_namespaces_are_kept_once_in_order_and_one_is_needed() -> None:
    client = SwitchboardClient("http://gw", "t", namespaces=("/chat", "/", "/chat"))
    assert client.rooms() == [] and client.rooms("/") == []
    with pytest.raises(ValueError, match="namespace"):
        SwitchboardClient("http://gw", "t", namespaces=())
    with pytest.raises(ValueError, match="not an http"):
        SwitchboardClient("ftp://gw", "t")


async def test_an_unknown_namespace_is_refused_by_every_method(make: Factory) -> None:
    client = make()
    with pytest.raises(ValueError, match="'/nope'"):
        client.sid("/nope")
    with pytest.raises(ValueError, match="'/nope'"):
        client.on("x", print, namespace="/nope")
    with pytest.raises(ValueError, match="'/nope'"):
        await client.join("room:a", namespace="/nope")


# --- state -----------------------------------------------------------------------------


async def test_state_sid_and_reasons_follow_the_connection(make: Factory,
                                                           gateway: PingGateway) -> None:
    states: list[tuple[S, S]] = []
    client = make(on_state=lambda old, new: states.append((old, new)))
    assert client.state is S.DISCONNECTED and client.sid() is None
    await client.connect()
    assert client.sid() == "sid-1" and not client.recovered
    gateway.current.drop()
    await until(lambda: len(gateway.transports) == 2 and client.state is S.CONNECTED)
    assert client.recovered and client.sid() == "sid-2"
    reason = client.disconnect_reason
    assert reason is not None and reason.kind == "transport"
    await client.close()
    assert client.disconnect_reason is not None
    assert client.disconnect_reason.kind == "client_close"
    assert states == [(S.DISCONNECTED, S.CONNECTING), (S.CONNECTING, S.CONNECTED),
                      (S.CONNECTED, S.RECONNECTING), (S.RECONNECTING, S.CONNECTED),
                      (S.CONNECTED, S.DISCONNECTED)]


async def test_the_client_is_an_async_context_manager(make: Factory) -> None:
    client = make()
    async with client as same:
        assert same is client and same.state is S.CONNECTED
    assert client.disconnect_reason is not None
    assert client.disconnect_reason.kind == "client_close"


async def test_suspend_pongs_stops_answering_pings_for_a_while(make: Factory,
                                                               gateway: PingGateway) -> None:
    client = await connected(make)
    assert gateway.answer_pings is not None and gateway.answer_pings()
    client.suspend_pongs(60)
    assert not gateway.answer_pings()
    client.suspend_pongs(-1)
    assert gateway.answer_pings()


# --- requests --------------------------------------------------------------------------


async def test_join_sends_since_once_a_position_is_known(make: Factory,
                                                         gateway: PingGateway) -> None:
    client = await connected(make)
    assert await client.join("room:a") == {"ok": True}
    gateway.current.push(Packet(PacketType.EVENT, "/chat", [
        "message:received", {"room": "room:a", "seq": 5, "prev": 0}]))
    await until(lambda: client.position("room:a") == 5)
    await client.join("room:a")
    assert requests(gateway, "room:join") == [("/chat", {"room": "room:a"}),
                                              ("/chat", {"room": "room:a", "since": 5})]
    assert client.rooms() == ["room:a"]


async def test_join_starts_from_the_stored_position(make: Factory,
                                                    gateway: PingGateway) -> None:
    store = MemoryPositionStore()
    store.save("/chat", "room:a", 41)
    client = await connected(make, store=store)
    assert client.position("room:a") == 41
    await client.join("room:a")
    assert requests(gateway, "room:join") == [("/chat", {"room": "room:a", "since": 41})]


async def test_a_failed_join_does_not_keep_the_room(make: Factory, gateway: PingGateway) -> None:
    client = await connected(make)
    gateway.acks["room:join"] = lambda p: {"ok": False,
                                           "error": {"code": "forbidden", "message": "no"}}
    with pytest.raises(RequestFailed, match="forbidden"):
        await client.join("room:secret")
    assert client.rooms() == []


async def test_leave_forgets_the_room_and_tells_the_gateway(make: Factory,
                                                            gateway: PingGateway) -> None:
    client = await connected(make)
    await client.join("room:a")
    await client.join("room:b")
    await client.leave("room:a")
    assert client.rooms() == ["room:b"]
    assert requests(gateway, "room:leave") == [("/chat", {"room": "room:a"})]


async def test_send_carries_one_idempotency_key_for_every_retry(make: Factory,
                                                                gateway: PingGateway) -> None:
    client = await connected(make)
    answers = iter([{"ok": False, "error": {"code": "rate_limited", "message": "m",
                                            "retry_after_ms": 1}}, {"ok": True, "seq": 1}])
    gateway.acks["message:send"] = lambda p: next(answers)
    assert await client.send("room:a", "hi") == {"ok": True, "seq": 1}
    (_, first), (_, second) = requests(gateway, "message:send")
    assert first == second and set(first) == {"room", "text", "id"}
    assert re.fullmatch(r"[0-9a-f]{32}", first["id"])

    gateway.acks["message:send"] = lambda p: {"ok": True}
    await client.send("room:a", "pic", attachment=b"\x89PNG", id="mine")
    _, third = requests(gateway, "message:send")[-1]
    assert third == {"room": "room:a", "text": "pic", "id": "mine", "attachment": b"\x89PNG"}


async def test_every_send_gets_its_own_key(make: Factory, gateway: PingGateway) -> None:
    client = await connected(make)
    await client.send("room:a", "one")
    await client.send("room:a", "two")
    ids = {payload["id"] for _, payload in requests(gateway, "message:send")}
    assert len(ids) == 2


async def test_history_sends_only_the_keys_given(make: Factory, gateway: PingGateway) -> None:
    client = await connected(make)
    gateway.acks["room:history"] = lambda p: {"ok": True, "messages": [], "complete": True}
    assert (await client.history("room:a"))["complete"] is True
    await client.history("room:a", before=9, limit=20)
    await client.history("room:a", since=0)
    assert [payload for _, payload in requests(gateway, "room:history")] == [
        {"room": "room:a"}, {"room": "room:a", "before": 9, "limit": 20},
        {"room": "room:a", "since": 0}]


async def test_emit_and_emit_with_ack_in_the_named_namespace(make: Factory,
                                                             gateway: PingGateway) -> None:
    client = await connected(make, namespaces=("/chat", "/notifications"))
    gateway.acks["custom"] = lambda p: p.data[1] * 2
    assert await client.emit_with_ack("custom", 21, namespace="/notifications") == 42
    await client.emit("typing:start", {"room": "room:a"})
    assert [(p.nsp, p.data, p.id is None) for p in gateway.current.events()] == [
        ("/notifications", ["custom", 21], False),
        ("/chat", ["typing:start", {"room": "room:a"}], True)]


async def test_emit_with_ack_takes_its_own_timeout_and_retries(make: Factory,
                                                               gateway: PingGateway) -> None:
    client = await connected(make, retries=5)
    gateway.acks["custom"] = lambda p: NO_ACK
    with pytest.raises(AckTimeout, match=r"no ack after 2 attempt\(s\)"):
        await client.emit_with_ack("custom", timeout=0.01 * UNIT, retries=1)
    assert client.counters.ack_retries == 1


# --- callbacks -------------------------------------------------------------------------


async def test_messages_go_to_the_namespace_callbacks_and_other_events_to_on(
        make: Factory, gateway: PingGateway) -> None:
    client = make(namespaces=("/chat", "/notifications"))
    everywhere: list[Any] = []
    chat_only: list[Any] = []
    presence: list[Any] = []
    client.on_message(everywhere.append)
    client.on_message(chat_only.append, namespace="/chat")
    client.on("presence:update", lambda *args: presence.append(args))
    await client.connect()
    first = {"room": "room:a", "seq": 1, "prev": 0}
    note = {"room": "room:n", "seq": 1, "prev": 0}
    gateway.current.push(Packet(PacketType.EVENT, "/chat", ["message:received", first, "o1"]))
    gateway.current.push(Packet(PacketType.EVENT, "/notifications",
                                ["message:received", note]))
    gateway.current.push(Packet(PacketType.EVENT, "/chat", ["presence:update", {"n": 2}, "o2"]))
    gateway.current.push(Packet(PacketType.EVENT, "/notifications", ["presence:update", {}]))
    await until(lambda: client.counters.messages_delivered == 2 and
                client.counters.offsets_received == 2)
    await client.drain()
    assert everywhere == [first, note]
    assert chat_only == [first]
    assert presence == [({"n": 2},)]  # only the default namespace's handler was registered


async def test_unfillable_gaps_reach_on_gap(make: Factory, gateway: PingGateway) -> None:
    client = make()
    gaps: list[Gap] = []
    client.on_gap(gaps.append)
    await client.connect()
    gateway.acks["room:history"] = lambda p: {
        "ok": False, "error": {"code": "not_recoverable", "message": "trimmed"}}
    gateway.current.push(Packet(PacketType.EVENT, "/chat", [
        "message:received", {"room": "room:a", "seq": 1, "prev": 0}]))
    gateway.current.push(Packet(PacketType.EVENT, "/chat", [
        "message:received", {"room": "room:a", "seq": 9, "prev": 8}]))
    await until(lambda: bool(gaps))
    assert gaps == [Gap("room:a", 1, 8, "not_recoverable", "/chat")]
    assert requests(gateway, "room:history") == [
        ("/chat", {"room": "room:a", "since": 1, "limit": 100})]
    await until(lambda: client.position("room:a") == 9)


async def test_drain_waits_for_coroutine_callbacks(make: Factory,
                                                   gateway: PingGateway) -> None:
    client = make()
    done: list[int] = []

    async def slow(message: Any) -> None:
        await asyncio.sleep(0)
        done.append(message["seq"])

    client.on_message(slow)
    await client.connect()
    gateway.current.push(Packet(PacketType.EVENT, "/chat", [
        "message:received", {"room": "room:a", "seq": 1, "prev": 0}]))
    await until(lambda: client.counters.messages_delivered == 1)
    await client.drain()
    assert done == [1]
