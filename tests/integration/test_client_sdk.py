"""The Python SDK against real gateways on a real nats-server: connect, multiplexed
namespaces, join and send across two gateways, acks retried with the same idempotency key,
reconnects after heartbeat failure and after a gateway's death, terminal refusals, and (with
the durable log) recovery, seq/prev de-duplication and catch-up across a reload."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from client import (
    ClientClosed,
    ConnectionState,
    ConnectRefused,
    JsonFilePositionStore,
    SwitchboardClient,
)
from client.transport import Transport
from shared.protocol import events
from shared.protocol.packets import Packet, PacketType
from tests.support.processes import Service
from tests.support.timing import UNIT
from tests.support.tokens import make_token

pytestmark = pytest.mark.integration

S = ConnectionState
Factory = Callable[..., SwitchboardClient]


class Inbox:
    """Messages one client's app saw, in order."""

    def __init__(self, client: SwitchboardClient) -> None:
        self.messages: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        client.on_message(self._add)

    def _add(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self._arrived.set()

    async def wait_for(self, count: int, within: float = 5 * UNIT) -> list[dict[str, Any]]:
        async with asyncio.timeout(within):
            while len(self.messages) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.messages

    def texts(self) -> list[str]:
        return [m["text"] for m in self.messages]


class States:
    def __init__(self, client: SwitchboardClient) -> None:
        self.seen: list[S] = [client.state]
        self._changed = asyncio.Event()
        client.on_state(self._on_state)

    def _on_state(self, old: S, new: S) -> None:
        self.seen.append(new)
        self._changed.set()

    async def reach(self, path: list[S], within: float = 10 * UNIT) -> None:
        async with asyncio.timeout(within):
            while self.seen[-len(path):] != path:
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
async def sdk() -> AsyncIterator[Factory]:
    """Makes clients with test-friendly timings; closes every one of them."""
    made: list[SwitchboardClient] = []

    def make(url: str, sub: str, **options: Any) -> SwitchboardClient:
        options.setdefault("ack_timeout", 2 * UNIT)
        options.setdefault("backoff_base", 0.05)
        options.setdefault("random", lambda: 0.0)
        token = options.pop("token", None) or make_token(sub)
        client = SwitchboardClient(url, token, **options)
        made.append(client)
        return client

    try:
        yield make
    finally:
        for client in made:
            await client.close()


async def quiet(within: float = 0.3 * UNIT) -> None:
    """Give a wrong extra message the chance to arrive before asserting there is none."""
    await asyncio.sleep(within)


async def test_join_and_send_across_two_gateways_delivers_once(
    gateway_pair: list[Service], sdk: Factory
) -> None:
    alice = sdk(gateway_pair[0].url, "alice")
    bob = sdk(gateway_pair[1].url, "bob")
    alice_inbox, bob_inbox = Inbox(alice), Inbox(bob)
    await alice.connect()
    await bob.connect()
    assert alice.state is S.CONNECTED and alice.sid() is not None

    assert await alice.join("room:sdk-once") == {"ok": True, "room": "room:sdk-once"}
    await bob.join("room:sdk-once")
    ack = await alice.send("room:sdk-once", "hello bob")

    assert ack["ok"] is True and len(ack["id"]) == 32
    [message] = await bob_inbox.wait_for(1)
    assert (message["from"], message["text"], message["id"]) == ("alice", "hello bob", ack["id"])
    await alice_inbox.wait_for(1)  # a sender receives its own messages too
    await quiet()
    assert bob_inbox.texts() == alice_inbox.texts() == ["hello bob"]
    assert bob.counters.messages_delivered == 1


async def test_namespaces_share_one_connection_and_binary_goes_both_ways(
    gateway_pair: list[Service], sdk: Factory
) -> None:
    alice = sdk(gateway_pair[0].url, "alice", namespaces=("/chat", "/live-updates"))
    bob = sdk(gateway_pair[1].url, "bob", namespaces=("/chat", "/live-updates"))
    bob_inbox = Inbox(bob)
    await alice.connect()
    await bob.connect()
    assert alice.sid("/chat") != alice.sid("/live-updates")
    for client in (alice, bob):
        await client.join("room:sdk-bin")
        assert await client.join("room:sdk-bin", namespace="/live-updates") == {
            "ok": True, "room": "room:sdk-bin"}

    blob = bytes(range(256)) * 4
    await alice.send("room:sdk-bin", "a file", attachment=blob)

    [message] = await bob_inbox.wait_for(1)
    assert message["attachment"] == blob and message["text"] == "a file"


async def test_request_errors_raise_and_the_connection_lives(
    gateway_pair: list[Service], sdk: Factory
) -> None:
    from client import RequestFailed

    alice = sdk(gateway_pair[0].url, "alice")
    await alice.connect()

    with pytest.raises(RequestFailed) as refused:
        await alice.send("room:not-joined", "hi")
    assert refused.value.code == "forbidden"
    with pytest.raises(RequestFailed) as bad:
        await alice.join("bad room name")
    assert bad.value.code == "bad_request"
    assert alice.rooms() == []
    assert await alice.join("room:after-errors") == {"ok": True, "room": "room:after-errors"}


async def test_emit_with_ack_retries_with_the_same_idempotency_key(
    gateway_pair: list[Service], sdk: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = sdk(gateway_pair[0].url, "alice", ack_timeout=0.5 * UNIT)
    await alice.connect()
    await alice.join("room:sdk-retry")
    sent: list[Packet] = []
    original_send = Transport.send

    async def record(self: Transport, packet: Packet) -> None:
        sent.append(packet)
        await original_send(self, packet)

    monkeypatch.setattr(Transport, "send", record)
    acks = alice._channel(None).acks  # drop the first ack, as if it was lost on the way
    original_resolve = acks.resolve
    dropped: list[int | None] = []

    def lose_first(ack_id: int | None, args: Any) -> bool:
        if not dropped:
            dropped.append(ack_id)
            return False
        return original_resolve(ack_id, args)

    monkeypatch.setattr(acks, "resolve", lose_first)

    ack = await alice.send("room:sdk-retry", "once please")

    attempts = [p for p in sent if p.type is PacketType.EVENT
                and p.data[0] == events.MESSAGE_SEND]
    assert len(attempts) == 2
    assert attempts[0].data[1] == attempts[1].data[1]  # same payload, same id
    assert attempts[0].id != attempts[1].id  # a new ack id per attempt
    assert ack["ok"] is True and ack["id"] == attempts[0].data[1]["id"]
    assert alice.counters.ack_retries == 1


async def test_reconnects_after_heartbeat_failure_and_rejoins(
    start_gateway: Callable[..., Service], gateway_pair: list[Service], sdk: Factory
) -> None:
    gateway = start_gateway(SB_PING_INTERVAL_MS="200", SB_PING_TIMEOUT_MS="200")
    alice = sdk(gateway.url, "alice")
    bob = sdk(gateway_pair[0].url, "bob")
    states, alice_inbox = States(alice), Inbox(alice)
    await alice.connect()
    await bob.connect()
    await alice.join("room:sdk-hb")
    await bob.join("room:sdk-hb")

    alice.suspend_pongs(0.7)  # two unanswered pings: the gateway closes with 4000
    await states.reach([S.RECONNECTING, S.CONNECTED])

    assert states.seen == [S.DISCONNECTED, S.CONNECTING, S.CONNECTED, S.RECONNECTING,
                           S.CONNECTED]
    reason = alice.disconnect_reason
    assert reason is not None and not reason.terminal and "4000" in reason.message
    assert alice.rooms() == ["room:sdk-hb"]
    await bob.send("room:sdk-hb", "after the reconnect")
    [message] = await alice_inbox.wait_for(1)
    assert message["text"] == "after the reconnect"
    assert alice.counters.reconnect_attempts >= 1


async def test_reconnects_to_a_gateway_restarted_on_the_same_port(
    start_gateway: Callable[..., Service], gateway_pair: list[Service], sdk: Factory
) -> None:
    gateway = start_gateway()
    alice = sdk(gateway.url, "alice")
    bob = sdk(gateway_pair[1].url, "bob")
    states, alice_inbox = States(alice), Inbox(alice)
    await alice.connect()
    await bob.connect()
    await alice.join("room:sdk-restart")
    await bob.join("room:sdk-restart")

    gateway.kill()
    await states.reach([S.RECONNECTING])
    gateway.stop()
    assert gateway.log_path is not None
    gateway.start(gateway.log_path.parent)
    await states.reach([S.RECONNECTING, S.CONNECTED], within=20 * UNIT)

    assert states.seen == [S.DISCONNECTED, S.CONNECTING, S.CONNECTED, S.RECONNECTING,
                           S.CONNECTED]
    await bob.send("room:sdk-restart", "welcome back")
    [message] = await alice_inbox.wait_for(1)
    assert message["text"] == "welcome back"


async def test_token_callable_is_asked_on_every_connect_and_a_refusal_is_terminal(
    start_gateway: Callable[..., Service], sdk: Factory
) -> None:
    gateway = start_gateway(SB_PING_INTERVAL_MS="200", SB_PING_TIMEOUT_MS="200")
    asked: list[str] = []

    async def token() -> str:
        asked.append(make_token("alice") if not asked else "not-a-jwt")
        return asked[-1]

    alice = sdk(gateway.url, "alice", token=token)
    states = States(alice)
    await alice.connect()

    alice.suspend_pongs(0.7)
    await states.reach([S.RECONNECTING, S.DISCONNECTED])

    assert asked[0] != "not-a-jwt" and asked[1:] == ["not-a-jwt"]
    reason = alice.disconnect_reason
    assert reason is not None and reason.kind == "connect_error"
    assert reason.message == "unauthorized" and reason.namespace == "/chat"
    with pytest.raises(ClientClosed):
        await alice.join("room:never")


async def test_a_refused_first_connect_raises(
    gateway_pair: list[Service], sdk: Factory
) -> None:
    alice = sdk(gateway_pair[0].url, "alice", token=make_token("alice", ttl=-60))
    states = States(alice)

    with pytest.raises(ConnectRefused) as refused:
        await alice.connect()

    assert refused.value.message == "unauthorized"
    assert states.seen == [S.DISCONNECTED, S.CONNECTING, S.DISCONNECTED]
    reason = alice.disconnect_reason
    assert reason is not None and reason.terminal


async def test_an_unknown_namespace_is_refused(
    gateway_pair: list[Service], sdk: Factory
) -> None:
    alice = sdk(gateway_pair[0].url, "alice", namespaces=("/chat", "/nope"))

    with pytest.raises(ConnectRefused) as refused:
        await alice.connect()

    assert (refused.value.namespace, refused.value.message) == ("/nope", "Invalid namespace")


# --- the durable log: seq/prev, recovery, idempotent retries, catch-up across a reload ---
# These need the gateway's durable /chat (pid in the CONNECT reply, seq/prev, offsets).


def assert_chain(messages: list[dict[str, Any]]) -> None:
    """Each message's prev is the seq of the one before it in the same room."""
    for before, after in itertools.pairwise(messages):
        assert after["prev"] == before["seq"] < after["seq"]


async def test_messages_carry_seq_and_a_prev_chain(
    gateway_pair: list[Service], sdk: Factory
) -> None:
    alice = sdk(gateway_pair[0].url, "alice")
    bob = sdk(gateway_pair[1].url, "bob")
    inbox = Inbox(alice)
    await alice.connect()
    await bob.connect()
    await alice.join("room:sdk-chain")
    await bob.join("room:sdk-chain")

    acks = [await bob.send("room:sdk-chain", f"m{i}") for i in range(3)]

    messages = await inbox.wait_for(3)
    assert [m["seq"] for m in messages] == [a["seq"] for a in acks]
    assert_chain(messages)
    assert set(messages[0]) >= {"room", "id", "seq", "prev", "from", "text", "ts"}
    assert alice.position("room:sdk-chain") == acks[-1]["seq"]
    assert alice.counters.offsets_received >= 3  # stripped: no handler saw them


async def test_recovery_replays_what_was_missed_once_and_in_order(
    start_gateway: Callable[..., Service], gateway_pair: list[Service], sdk: Factory
) -> None:
    gateway = start_gateway(SB_PING_INTERVAL_MS="200", SB_PING_TIMEOUT_MS="200")
    alice = sdk(gateway.url, "alice")
    bob = sdk(gateway_pair[0].url, "bob")
    states, inbox = States(alice), Inbox(alice)
    await alice.connect()
    await bob.connect()
    await alice.join("room:sdk-recover")
    await bob.join("room:sdk-recover")
    await bob.send("room:sdk-recover", "before")
    await inbox.wait_for(1)

    alice.suspend_pongs(0.7)
    await states.reach([S.RECONNECTING])
    await bob.send("room:sdk-recover", "while away 1")
    await bob.send("room:sdk-recover", "while away 2")
    await states.reach([S.RECONNECTING, S.CONNECTED])
    await bob.send("room:sdk-recover", "after")

    await inbox.wait_for(4)
    await quiet()
    assert inbox.texts() == ["before", "while away 1", "while away 2", "after"]
    assert_chain(inbox.messages)
    assert alice.recovered and alice.counters.recoveries >= 1
    assert alice.counters.rejoins == 0


async def test_recovery_on_another_gateway_after_a_sigkill(
    start_gateway: Callable[..., Service], gateway_pair: list[Service], sdk: Factory
) -> None:
    doomed = start_gateway()
    alice = sdk([doomed.url, gateway_pair[0].url], "alice")
    bob = sdk(gateway_pair[1].url, "bob")
    states, inbox = States(alice), Inbox(alice)
    await alice.connect()
    await bob.connect()
    await alice.join("room:sdk-sigkill")
    await bob.join("room:sdk-sigkill")
    await bob.send("room:sdk-sigkill", "before")
    await inbox.wait_for(1)

    doomed.kill()
    await bob.send("room:sdk-sigkill", "while dead")
    await states.reach([S.RECONNECTING, S.CONNECTED], within=20 * UNIT)
    await bob.send("room:sdk-sigkill", "after")

    await inbox.wait_for(3)
    await quiet()
    assert inbox.texts() == ["before", "while dead", "after"]
    assert_chain(inbox.messages)
    assert alice.recovered


async def test_a_retry_after_a_lost_ack_is_stored_once(
    gateway_pair: list[Service], sdk: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = sdk(gateway_pair[0].url, "alice", ack_timeout=0.5 * UNIT)
    bob = sdk(gateway_pair[1].url, "bob")
    inbox = Inbox(bob)
    await alice.connect()
    await bob.connect()
    await alice.join("room:sdk-dup")
    await bob.join("room:sdk-dup")
    acks = alice._channel(None).acks
    original_resolve = acks.resolve
    lost: list[Any] = []

    def lose_first(ack_id: int | None, args: Any) -> bool:
        if not lost:
            lost.append(args)
            return False
        return original_resolve(ack_id, args)

    monkeypatch.setattr(acks, "resolve", lose_first)

    ack = await alice.send("room:sdk-dup", "exactly once")

    assert ack["duplicate"] is True and ack["seq"] == lost[0][0]["seq"]
    [message] = await inbox.wait_for(1)
    await quiet()
    assert inbox.texts() == ["exactly once"] and message["seq"] == ack["seq"]


async def test_a_reloaded_client_catches_up_from_its_stored_positions(
    gateway_pair: list[Service], sdk: Factory, tmp_path: Path
) -> None:
    path = tmp_path / "positions.json"
    bob = sdk(gateway_pair[1].url, "bob")
    await bob.connect()
    await bob.join("room:sdk-reload")
    alice = sdk(gateway_pair[0].url, "alice", store=JsonFilePositionStore(path))
    inbox = Inbox(alice)
    await alice.connect()
    await alice.join("room:sdk-reload")
    await bob.send("room:sdk-reload", "seen before the reload")
    await inbox.wait_for(1)
    await alice.drain()
    await alice.close()

    await bob.send("room:sdk-reload", "missed 1")
    await bob.send("room:sdk-reload", "missed 2")
    reloaded = sdk(gateway_pair[0].url, "alice", store=JsonFilePositionStore(path))
    caught_up = Inbox(reloaded)
    await reloaded.connect()
    await reloaded.join("room:sdk-reload")

    await caught_up.wait_for(2)
    await quiet()
    assert caught_up.texts() == ["missed 1", "missed 2"]
    assert caught_up.messages[0]["prev"] == inbox.messages[0]["seq"]


async def test_recovery_off_gets_no_pid_and_no_offsets(
    gateway_pair: list[Service], sdk: Factory
) -> None:
    alice = sdk(gateway_pair[0].url, "alice", recovery=False)
    inbox = Inbox(alice)
    await alice.connect()
    await alice.join("room:sdk-norecovery")

    await alice.send("room:sdk-norecovery", "plain")

    [message] = await inbox.wait_for(1)
    assert message["text"] == "plain" and "seq" in message
    assert alice._channel(None).recovery.pid is None
    assert alice.counters.offsets_received == 0
