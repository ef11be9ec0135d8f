"""The SDK against a scripted Socket.IO server on loopback: each test writes the gateway's
side of the wire by hand, so recovery (pid, offsets, missed events before the CONNECT reply),
re-joins with ``since``, gap fills from history, kicks and heartbeat loss are checked frame
by frame, independently of the gateway's progress."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from client import (
    ConnectionState,
    Gap,
    JsonFilePositionStore,
    PositionStore,
    SwitchboardClient,
)
from shared.protocol.packets import InvalidPacket, Packet, PacketType, parse_packet
from tests.support.timing import UNIT

S = ConnectionState
WITHIN = 5 * UNIT


def open_packet(interval_ms: int = 25_000, timeout_ms: int = 5_000) -> str:
    return "0" + orjson.dumps({"sid": "eio", "upgrades": [], "pingInterval": interval_ms,
                               "pingTimeout": timeout_ms, "maxPayload": 1_000_000}).decode()


def msg(seq: int, prev: int, room: str = "room:a") -> dict[str, Any]:
    return {"room": room, "id": f"m{seq}", "seq": seq, "prev": prev, "from": "u",
            "text": f"t{seq}", "ts": 0}


def frame(kind: PacketType, data: Any = None, ack_id: int | None = None,
          nsp: str = "/chat") -> str:
    head = f"4{int(kind)}" + ("" if nsp == "/" else nsp + ",")
    head += "" if ack_id is None else str(ack_id)
    return head + ("" if data is None else orjson.dumps(data).decode())


class Peer:
    """The server side of one client connection."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws

    async def send(self, text: str) -> None:
        await self.ws.send(text)

    async def packet(self) -> Packet:
        """The next Socket.IO packet from the client (pongs skipped)."""
        async with asyncio.timeout(WITHIN):
            while True:
                raw = await self.ws.recv()
                assert isinstance(raw, str)
                if raw == "3":
                    continue
                parsed = parse_packet(raw[1:])
                assert not isinstance(parsed, InvalidPacket), raw
                return parsed

    async def open(self, interval_ms: int = 25_000, timeout_ms: int = 5_000) -> None:
        await self.send(open_packet(interval_ms, timeout_ms))

    async def connect(self, reply: dict[str, Any],
                      before: tuple[str, ...] = ()) -> dict[str, Any]:
        """Take the namespace CONNECT, write ``before`` (missed events), then the reply."""
        packet = await self.packet()
        assert packet.type is PacketType.CONNECT and packet.nsp == "/chat"
        for text in before:
            await self.send(text)
        await self.send(frame(PacketType.CONNECT, reply))
        auth: dict[str, Any] = packet.data
        return auth

    async def request(self, event: str) -> Packet:
        packet = await self.packet()
        assert packet.type is PacketType.EVENT and packet.data[0] == event, packet
        return packet

    async def ack(self, packet: Packet, body: Any) -> None:
        await self.send(frame(PacketType.ACK, [body], packet.id))

    async def event(self, name: str, *args: Any) -> None:
        await self.send(frame(PacketType.EVENT, [name, *args]))

    async def ping_pong(self) -> None:
        """A round trip proving the client sent nothing else before it."""
        await self.send("2")
        async with asyncio.timeout(WITHIN):
            assert await self.ws.recv() == "3"


class FakeGateway:
    def __init__(self, url: str) -> None:
        self.url = url
        self.peers: asyncio.Queue[Peer] = asyncio.Queue()

    async def accept(self) -> Peer:
        async with asyncio.timeout(WITHIN):
            return await self.peers.get()


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    gateway: FakeGateway | None = None

    async def handler(ws: ServerConnection) -> None:
        assert gateway is not None
        await gateway.peers.put(Peer(ws))
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, compression=None, ping_interval=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        gateway = FakeGateway(f"http://127.0.0.1:{port}")
        yield gateway


Factory = Callable[..., SwitchboardClient]


@pytest.fixture
async def make(fake: FakeGateway) -> AsyncIterator[Factory]:
    made: list[SwitchboardClient] = []

    def build(**options: Any) -> SwitchboardClient:
        options.setdefault("backoff_base", 0.01)
        options.setdefault("random", lambda: 0.0)
        options.setdefault("ack_timeout", 1 * UNIT)
        client = SwitchboardClient(fake.url, options.pop("token", "tok"), **options)
        made.append(client)
        return client

    try:
        yield build
    finally:
        for client in made:
            await client.close()


class Seen:
    """What the app saw: messages, gaps and states, in order."""

    def __init__(self, client: SwitchboardClient) -> None:
        self.items: list[Any] = []
        self.states: list[S] = []
        self._changed = asyncio.Event()
        client.on_message(self._add)
        client.on_gap(self._add)
        client.on_state(lambda old, new: self._add_state(new))

    def _add(self, item: Any) -> None:
        self.items.append(item)
        self._changed.set()

    def _add_state(self, state: S) -> None:
        self.states.append(state)
        self._changed.set()

    async def until(self, done: Callable[[], bool]) -> None:
        async with asyncio.timeout(WITHIN):
            while not done():
                self._changed.clear()
                await self._changed.wait()

    def seqs(self) -> list[int]:
        return [item["seq"] for item in self.items if isinstance(item, dict)]


async def start(fake: FakeGateway, client: SwitchboardClient,
                reply: dict[str, Any]) -> tuple[Peer, dict[str, Any]]:
    connecting = asyncio.create_task(client.connect())
    peer = await fake.accept()
    await peer.open()
    auth = await peer.connect(reply)
    await connecting
    return peer, auth


async def join(peer: Peer, client: SwitchboardClient, room: str = "room:a") -> Packet:
    joining = asyncio.create_task(client.join(room))
    request = await peer.request("room:join")
    await peer.ack(request, {"ok": True, "room": room})
    await joining
    return request


# --- recovery ---------------------------------------------------------------------------


async def test_recovered_session_gets_missed_events_first_and_rejoins_nothing(
    fake: FakeGateway, make: Factory
) -> None:
    client = make()
    seen = Seen(client)
    peer, auth = await start(fake, client, {"sid": "s1", "pid": "p1"})
    assert auth == {"token": "tok"}
    await join(peer, client)
    await peer.event("message:received", msg(5, 0), "5")
    await seen.until(lambda: seen.seqs() == [5])
    assert seen.items[0] == msg(5, 0)  # the offset never reaches the app

    await peer.ws.close(1012)  # drain: a recoverable transport close
    again = await fake.accept()
    await again.open()
    auth = await again.connect({"sid": "s1", "pid": "p1"}, before=(
        frame(PacketType.EVENT, ["message:received", msg(7, 5), "7"]),))

    assert auth == {"token": "tok", "pid": "p1", "offset": "5"}
    await seen.until(lambda: seen.states[-1] is S.CONNECTED and len(seen.states) == 4)
    await again.ping_pong()  # no room:join went out: the rooms came back with the session
    assert client.recovered
    await seen.until(lambda: seen.seqs() == [5, 7])
    assert seen.states == [S.CONNECTING, S.CONNECTED, S.RECONNECTING, S.CONNECTED]
    assert client.counters.recoveries == 1 and client.counters.rejoins == 0
    assert client.disconnect_reason is not None
    assert client.disconnect_reason.message == "closed by the server: 1012"


async def test_a_session_that_did_not_come_back_rejoins_with_since(
    fake: FakeGateway, make: Factory
) -> None:
    client = make()
    seen = Seen(client)
    peer, _ = await start(fake, client, {"sid": "s1", "pid": "p1"})
    await join(peer, client)
    await peer.event("message:received", msg(5, 0), "5")
    await seen.until(lambda: seen.seqs() == [5])

    await peer.ws.close(4000)
    again = await fake.accept()
    await again.open()
    await again.connect({"sid": "s2", "pid": "p2"})
    rejoin = await again.request("room:join")
    assert rejoin.data[1] == {"room": "room:a", "since": 5}
    await again.event("message:received", msg(6, 5), "6")  # replayed before the join ack
    await again.ack(rejoin, {"ok": True, "room": "room:a"})

    await seen.until(lambda: len(seen.states) == 4)
    assert not client.recovered
    await seen.until(lambda: seen.seqs() == [5, 6])
    counters = client.counters
    assert (counters.recovery_misses, counters.rejoins, counters.recoveries) == (1, 1, 0)

    await again.ws.close(1012)  # the new session's pid is the one asked for next
    third = await fake.accept()
    await third.open()
    assert await third.connect({"sid": "s2", "pid": "p2"}) == {
        "token": "tok", "pid": "p2", "offset": "6"}


async def test_reconnect_before_any_event_sends_pid_without_offset(
    fake: FakeGateway, make: Factory
) -> None:
    client = make()
    peer, _ = await start(fake, client, {"sid": "s1", "pid": "p1"})

    await peer.ws.close(1012)
    again = await fake.accept()
    await again.open()

    assert await again.connect({"sid": "s1", "pid": "p1"}) == {"token": "tok", "pid": "p1"}


async def test_recovery_off_says_so_and_keeps_trailing_strings(
    fake: FakeGateway, make: Factory
) -> None:
    client = make(recovery=False)
    got: list[tuple[Any, ...]] = []
    client.on("typing:start", lambda *args: got.append(args))
    peer, auth = await start(fake, client, {"sid": "s1"})
    assert auth == {"token": "tok", "recovery": False}

    await peer.event("typing:start", {"room": "room:a", "user": "u"}, "not-an-offset")
    await peer.ping_pong()
    await client.drain()

    assert got == [({"room": "room:a", "user": "u"}, "not-an-offset")]
    assert client.counters.offsets_received == 0


async def test_other_events_reach_handlers_without_their_offset(
    fake: FakeGateway, make: Factory
) -> None:
    client = make()
    got: list[tuple[Any, ...]] = []
    client.on("presence:update", lambda *args: got.append(args))
    peer, _ = await start(fake, client, {"sid": "s1", "pid": "p1"})

    await peer.event("presence:update", {"user": "u", "status": "online"}, "41")
    await peer.ping_pong()
    await client.drain()

    assert got == [({"user": "u", "status": "online"},)]
    assert client.counters.offsets_received == 1


async def test_the_token_callable_is_asked_again_on_reconnect(
    fake: FakeGateway, make: Factory
) -> None:
    tokens = iter(["first", "second"])

    async def token() -> str:
        return next(tokens)

    client = make(token=token)
    peer, auth = await start(fake, client, {"sid": "s1"})
    assert auth["token"] == "first"

    await peer.ws.close(1012)
    again = await fake.accept()
    await again.open()
    assert (await again.connect({"sid": "s2"}))["token"] == "second"


# --- sequence: duplicates, gaps ---------------------------------------------------------


async def test_a_gap_is_filled_from_history_before_later_messages(
    fake: FakeGateway, make: Factory
) -> None:
    client = make()
    seen = Seen(client)
    peer, _ = await start(fake, client, {"sid": "s1", "pid": "p1"})
    await join(peer, client)
    await peer.event("message:received", msg(5, 0), "5")
    await peer.event("message:received", msg(9, 7), "9")  # 7 is missing
    await peer.event("message:received", msg(10, 9), "10")

    history = await peer.request("room:history")
    assert history.data[1] == {"room": "room:a", "since": 5, "limit": 100}
    await peer.event("message:received", msg(9, 7), "9")  # a duplicate while filling
    await peer.ack(history, {"ok": True, "messages": [msg(7, 5), msg(9, 7)], "complete": True})

    await seen.until(lambda: seen.seqs() == [5, 7, 9, 10])
    counters = client.counters
    assert (counters.gaps_detected, counters.gaps_filled, counters.gaps_unrecoverable) == (1, 1, 0)
    assert counters.messages_delivered == 4 and counters.duplicates_dropped == 1
    assert client.position("room:a") == 10


async def test_a_gap_the_log_lost_is_reported_to_the_app_in_place(
    fake: FakeGateway, make: Factory
) -> None:
    client = make()
    seen = Seen(client)
    peer, _ = await start(fake, client, {"sid": "s1", "pid": "p1"})
    await join(peer, client)
    await peer.event("message:received", msg(5, 0), "5")
    await peer.event("message:received", msg(9, 7), "9")

    history = await peer.request("room:history")
    await peer.ack(history, {"ok": False, "error": {"code": "not_recoverable",
                                                     "message": "trimmed"}})

    await seen.until(lambda: len(seen.items) == 3)
    assert seen.items == [msg(5, 0), Gap("room:a", 5, 7, "not_recoverable", "/chat"),
                          msg(9, 7)]
    assert client.counters.gaps_unrecoverable == 1 and client.counters.gaps_filled == 0


async def test_positions_survive_a_restart_and_join_asks_for_what_was_missed(
    fake: FakeGateway, make: Factory, tmp_path: Path
) -> None:
    store: PositionStore = JsonFilePositionStore(tmp_path / "positions.json")
    first = make(store=store)
    seen_first = Seen(first)
    peer, _ = await start(fake, first, {"sid": "s1", "pid": "p1"})
    await join(peer, first)
    await peer.event("message:received", msg(5, 0), "5")
    await seen_first.until(lambda: seen_first.seqs() == [5])
    await first.drain()
    await first.close()

    second = make(store=JsonFilePositionStore(tmp_path / "positions.json"))
    seen = Seen(second)
    peer, _ = await start(fake, second, {"sid": "s2", "pid": "p2"})
    joining = asyncio.create_task(second.join("room:a"))
    request = await peer.request("room:join")
    assert request.data[1] == {"room": "room:a", "since": 5}
    await peer.event("message:received", msg(5, 0), "5")  # the gateway replays: duplicate
    await peer.event("message:received", msg(6, 5), "6")
    await peer.ack(request, {"ok": True, "room": "room:a"})
    await joining

    await seen.until(lambda: seen.seqs() == [6])
    assert second.counters.duplicates_dropped == 1


# --- acks -------------------------------------------------------------------------------


async def test_a_late_ack_of_an_earlier_attempt_is_accepted(
    fake: FakeGateway, make: Factory
) -> None:
    client = make(ack_timeout=0.2 * UNIT)
    peer, _ = await start(fake, client, {"sid": "s1"})

    sending = asyncio.create_task(client.send("room:a", "hi", id="key-1"))
    first = await peer.request("message:send")
    second = await peer.request("message:send")  # re-sent after the timeout
    assert first.data == second.data and first.data[1]["id"] == "key-1"
    assert first.id != second.id
    await peer.ack(first, {"ok": True, "id": "key-1", "seq": 3, "duplicate": False})

    assert await sending == {"ok": True, "id": "key-1", "seq": 3, "duplicate": False}
    assert client.counters.ack_retries == 1


async def test_rate_limited_requests_wait_and_retry_with_the_same_payload(
    fake: FakeGateway, make: Factory
) -> None:
    client = make()
    peer, _ = await start(fake, client, {"sid": "s1"})

    sending = asyncio.create_task(client.send("room:a", "hi"))
    first = await peer.request("message:send")
    await peer.ack(first, {"ok": False, "error": {"code": "rate_limited", "message": "slow",
                                                   "retry_after_ms": 10}})
    second = await peer.request("message:send")
    await peer.ack(second, {"ok": True, "id": second.data[1]["id"], "seq": 1,
                            "duplicate": False})

    assert (await sending)["ok"] is True
    assert first.data == second.data


async def test_a_request_in_flight_during_a_reconnect_is_sent_again(
    fake: FakeGateway, make: Factory
) -> None:
    client = make(ack_timeout=30 * UNIT)
    peer, _ = await start(fake, client, {"sid": "s1"})

    sending = asyncio.create_task(client.send("room:a", "hi", id="key-2"))
    lost = await peer.request("message:send")
    await peer.ws.close(1012)
    again = await fake.accept()
    await again.open()
    await again.connect({"sid": "s2"})
    retry = await again.request("message:send")
    assert retry.data == lost.data
    await again.ack(retry, {"ok": True, "id": "key-2", "seq": 4, "duplicate": True})

    assert (await sending)["duplicate"] is True
    assert client.counters.ack_retries == 0  # a loss is not a timeout


# --- terminal ends and heartbeat --------------------------------------------------------


async def test_a_server_disconnect_ends_the_session_for_good(
    fake: FakeGateway, make: Factory
) -> None:
    client = make()
    seen = Seen(client)
    peer, _ = await start(fake, client, {"sid": "s1", "pid": "p1"})

    await peer.send("41/chat,")

    await seen.until(lambda: seen.states[-1] is S.DISCONNECTED)
    reason = client.disconnect_reason
    assert reason is not None and reason.kind == "server_disconnect"
    assert reason.namespace == "/chat" and reason.terminal
    assert seen.states == [S.CONNECTING, S.CONNECTED, S.DISCONNECTED]
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(0.3 * UNIT):
            await fake.peers.get()
            pytest.fail("the client reconnected after a server DISCONNECT")


async def test_a_connect_error_on_reconnect_is_terminal(
    fake: FakeGateway, make: Factory
) -> None:
    client = make()
    seen = Seen(client)
    peer, _ = await start(fake, client, {"sid": "s1"})

    await peer.ws.close(1012)
    again = await fake.accept()
    await again.open()
    await again.packet()
    await again.send('44/chat,{"message":"unauthorized","data":{"code":"unauthorized"}}')

    await seen.until(lambda: seen.states[-1] is S.DISCONNECTED)
    reason = client.disconnect_reason
    assert reason is not None and reason.kind == "connect_error"
    assert reason.data == {"code": "unauthorized"}


async def test_no_ping_within_interval_plus_timeout_is_a_dead_transport(
    fake: FakeGateway, make: Factory
) -> None:
    client = make()
    seen = Seen(client)
    connecting = asyncio.create_task(client.connect())
    peer = await fake.accept()
    await peer.open(interval_ms=100, timeout_ms=100)
    await peer.connect({"sid": "s1"})
    await connecting

    again = await fake.accept()  # no ping came: the client gave up on the first transport

    assert client.disconnect_reason is not None
    assert client.disconnect_reason.message == "ping timeout"
    await again.open()
    await again.connect({"sid": "s2"})
    await seen.until(lambda: seen.states[-2:] == [S.RECONNECTING, S.CONNECTED])
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(WITHIN):
            await peer.ws.recv()


async def test_pings_are_answered_unless_suspended(fake: FakeGateway, make: Factory) -> None:
    client = make()
    peer, _ = await start(fake, client, {"sid": "s1"})
    await peer.ping_pong()

    client.suspend_pongs(5 * UNIT)
    await peer.send("2")
    await peer.send(frame(PacketType.EVENT, ["typing:start", {"room": "r", "user": "u"}]))
    emitting = asyncio.create_task(client.emit("typing:stop", {"room": "room:a"}))
    packet = await peer.packet()  # the next frame is not a pong
    await emitting

    assert packet.data == ["typing:stop", {"room": "room:a"}]


async def test_messages_before_a_kick_still_reach_the_app(
    fake: FakeGateway, make: Factory
) -> None:
    client = make()
    seen = Seen(client)
    peer, _ = await start(fake, client, {"sid": "s1", "pid": "p1"})

    await peer.event("message:received", msg(5, 0), "5")
    await peer.send("41/chat,")

    await seen.until(lambda: S.DISCONNECTED in seen.states)
    assert seen.seqs() == [5]


async def test_close_from_inside_a_callback(fake: FakeGateway, make: Factory) -> None:
    client = make()
    closed = asyncio.Event()

    async def on_message(message: dict[str, Any]) -> None:
        await client.close()
        closed.set()

    client.on_message(on_message)
    peer, _ = await start(fake, client, {"sid": "s1"})
    await peer.event("message:received", msg(1, 0))

    async with asyncio.timeout(WITHIN):
        await closed.wait()
    assert client.state is S.DISCONNECTED
    assert client.disconnect_reason is not None
    assert client.disconnect_reason.kind == "client_close"


async def test_a_failing_token_callable_is_retried(fake: FakeGateway, make: Factory) -> None:
    calls: list[int] = []

    def token() -> str:
        calls.append(1)
        if len(calls) == 2:
            raise ConnectionError("identity provider unreachable")
        return f"tok{len(calls)}"

    client = make(token=token)
    seen = Seen(client)
    peer, _ = await start(fake, client, {"sid": "s1"})

    await peer.ws.close(1012)
    again = await fake.accept()
    await again.open()
    assert (await again.connect({"sid": "s2"}))["token"] == "tok3"
    await seen.until(lambda: seen.states[-2:] == [S.RECONNECTING, S.CONNECTED])
    assert client.counters.reconnect_attempts == 2
