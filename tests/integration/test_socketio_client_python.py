"""python-socketio's AsyncClient against two real gateways: namespaces multiplexed on one
connection, acks, binary, and error answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import socketio

from tests.support.processes import Service
from tests.support.timing import UNIT
from tests.support.tokens import make_token

pytestmark = pytest.mark.integration

Factory = Callable[..., "asyncio.Future[socketio.AsyncClient]"]


class Inbox:
    """Collects one client's events per (namespace, event)."""

    def __init__(self, client: socketio.AsyncClient) -> None:
        self.events: dict[tuple[str, str], asyncio.Queue[Any]] = {}

        def on_any(event: str, namespace: str, *args: Any) -> None:
            self.queue(namespace, event).put_nowait(args[0] if len(args) == 1 else args)

        for nsp in ("/", "/chat", "/live-updates", "/notifications"):
            client.on("*", lambda event, *args, nsp=nsp: on_any(event, nsp, *args),
                      namespace=nsp)

    def queue(self, nsp: str, event: str) -> asyncio.Queue[Any]:
        return self.events.setdefault((nsp, event), asyncio.Queue())

    async def next(self, nsp: str, event: str) -> Any:
        return await asyncio.wait_for(self.queue(nsp, event).get(), 5 * UNIT)


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Any]]:
    clients: list[socketio.AsyncClient] = []

    async def make(url: str, sub: str, namespaces: list[str]) -> tuple[socketio.AsyncClient,
                                                                         Inbox]:
        client = socketio.AsyncClient(reconnection=False)
        inbox = Inbox(client)
        clients.append(client)
        # python-socketio has no connection-state recovery: it opts out, as documented
        await client.connect(url, transports=["websocket"], namespaces=namespaces,
                             auth={"token": make_token(sub), "recovery": False}, wait_timeout=5)
        return client, inbox

    try:
        yield make
    finally:
        for client in clients:
            await client.disconnect()


async def test_namespaces_share_one_connection_and_fan_out_across_gateways(
    connect: Callable[..., Any], gateway_pair: list[Service]
) -> None:
    one, two = gateway_pair
    alice, _ = await connect(one.url, "alice", ["/chat", "/live-updates"])
    bob, bob_inbox = await connect(two.url, "bob", ["/chat", "/live-updates"])
    assert alice.connection_namespaces == bob.connection_namespaces == ["/chat", "/live-updates"]
    for client in (alice, bob):
        for nsp in ("/chat", "/live-updates"):
            ack = await client.call("room:join", {"room": "room:py"}, namespace=nsp)
            assert ack == {"ok": True, "room": "room:py"}

    ack = await alice.call("message:send", {"room": "room:py", "text": "chat hi", "id": "p1"},
                           namespace="/chat")
    assert ack["ok"] is True
    message = await bob_inbox.next("/chat", "message:received")
    assert (message["from"], message["text"]) == ("alice", "chat hi")
    assert bob_inbox.queue("/live-updates", "message:received").empty()


async def test_binary_attachment_and_sanitised_text(
    connect: Callable[..., Any], gateway_pair: list[Service]
) -> None:
    one, two = gateway_pair
    alice, _ = await connect(one.url, "alice", ["/chat"])
    bob, bob_inbox = await connect(two.url, "bob", ["/chat"])
    for client in (alice, bob):
        await client.call("room:join", {"room": "room:py-bin"}, namespace="/chat")
    ack = await alice.call("message:send", {"room": "room:py-bin", "id": "b1",
                                            "text": "e\u0301vil\u202e\x07 <b>",
                                            "attachment": b"\x00\xffdata"},
                           namespace="/chat")
    assert ack["ok"] is True
    message = await bob_inbox.next("/chat", "message:received")
    assert message["attachment"] == b"\x00\xffdata"
    assert message["text"] == "\u00e9vil <b>"


async def test_rooms_are_isolated_and_subject_injection_is_refused(
    connect: Callable[..., Any], gateway_pair: list[Service]
) -> None:
    one, two = gateway_pair
    alice, _ = await connect(one.url, "alice", ["/chat"])
    bob, bob_inbox = await connect(two.url, "bob", ["/chat"])
    await alice.call("room:join", {"room": "room:a"}, namespace="/chat")
    await bob.call("room:join", {"room": "room:b"}, namespace="/chat")
    for hostile in (">", "room:*", "room.>", "room:a.x", " room:a"):
        ack = await bob.call("room:join", {"room": hostile}, namespace="/chat")
        assert ack["error"]["code"] == "bad_request", hostile
    await alice.call("message:send", {"room": "room:a", "text": "secret", "id": "s1"},
                     namespace="/chat")
    ack = await bob.call("message:send", {"room": "room:a", "text": "x", "id": "s2"},
                         namespace="/chat")
    assert ack["error"]["code"] == "forbidden"
    await bob.call("message:send", {"room": "room:b", "text": "own", "id": "s3"},
                   namespace="/chat")
    message = await bob_inbox.next("/chat", "message:received")
    assert message["text"] == "own"


async def test_event_without_ack_gets_request_error(
    connect: Callable[..., Any], gateway_pair: list[Service]
) -> None:
    client, inbox = await connect(gateway_pair[0].url, "erin", ["/chat"])
    await client.emit("message:send", {"room": "room:e", "text": "x" * 4097, "id": "big"},
                      namespace="/chat")
    error = await inbox.next("/chat", "request:error")
    assert error["code"] == "too_large" and error["event"] == "message:send"
    await client.emit("what:ever", {}, namespace="/chat")
    error = await inbox.next("/chat", "request:error")
    assert error["code"] == "unknown_event"


async def test_without_opting_out_the_offset_arrives_as_an_extra_argument(
    gateway_pair: list[Service],
) -> None:
    """What the README warns python-socketio users about: recovery offsets are appended."""
    received: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    client = socketio.AsyncClient(reconnection=False)
    client.on("message:received", lambda *args: received.put_nowait(args), namespace="/chat")
    await client.connect(gateway_pair[0].url, transports=["websocket"], namespaces=["/chat"],
                         auth={"token": make_token("raw-py")}, wait_timeout=5)
    try:
        await client.call("room:join", {"room": "room:py-offset"}, namespace="/chat")
        await client.call("message:send", {"room": "room:py-offset", "text": "x", "id": "o1"},
                          namespace="/chat")
        message, offset = await asyncio.wait_for(received.get(), 5 * UNIT)
        assert message["text"] == "x" and isinstance(offset, str)
    finally:
        await client.disconnect()
