"""The unmodified socket.io-client (node) against two real gateways on one real NATS."""

from __future__ import annotations

import pytest

from tests.support.jsclient import JsClients
from tests.support.processes import Service
from tests.support.tokens import make_token

pytestmark = pytest.mark.integration



async def test_message_published_on_one_gateway_reaches_members_on_both(
    js: JsClients, gateway_pair: list[Service]
) -> None:
    one, two = gateway_pair
    for client, gateway in (("alice", one), ("bob", two)):
        reply = await js.connect(client, gateway.url, "/chat", make_token(client))
        assert reply["type"] == "connect"
    for client in ("alice", "bob"):
        assert await js.call(client, "room:join", {"room": "room:js-1"}) == {
            "ok": True, "room": "room:js-1"}

    ack = await js.call("alice", "message:send",
                        {"room": "room:js-1", "text": "hello bob", "id": "m-1"})
    assert ack["ok"] is True and ack["id"] == "m-1" and ack["duplicate"] is False
    assert isinstance(ack["seq"], int)

    for client in ("bob", "alice"):
        message, offset = await js.expect_event(client, "message:received")
        assert message["room"] == "room:js-1"
        assert message["from"] == "alice"
        assert message["text"] == "hello bob"
        assert message["id"] == "m-1"
        assert (message["seq"], message["prev"]) == (ack["seq"], 0)
        assert isinstance(message["ts"], int)
        assert isinstance(offset, str)


async def test_binary_attachment_round_trips_across_gateways(
    js: JsClients, gateway_pair: list[Service]
) -> None:
    one, two = gateway_pair
    await js.connect("alice", one.url, "/chat", make_token("alice"))
    await js.connect("bob", two.url, "/chat", make_token("bob"))
    for client in ("alice", "bob"):
        await js.call(client, "room:join", {"room": "room:js-bin"})
    blob = bytes(range(256)) * 40
    ack = await js.call("alice", "message:send",
                        {"room": "room:js-bin", "text": "", "id": "b-1", "attachment": blob})
    assert ack["ok"] is True
    message, _ = await js.expect_event("bob", "message:received")
    assert message["attachment"] == blob


async def test_token_on_the_upgrade_query_authenticates_every_namespace(
    js: JsClients, gateway_pair: list[Service]
) -> None:
    reply = await js.connect("carol", gateway_pair[0].url, "/chat",
                             query={"token": make_token("carol")})
    assert reply["type"] == "connect"
    assert await js.call("carol", "room:join", {"room": "room:q"}) == {"ok": True,
                                                                         "room": "room:q"}


async def test_bad_token_in_connect_is_a_terminal_connect_error(
    js: JsClients, gateway_pair: list[Service]
) -> None:
    reply = await js.connect("mallory", gateway_pair[0].url, "/chat",
                             make_token("mallory", secret="w" * 40))
    assert reply["type"] == "connect_error"
    assert reply["message"] == "unauthorized"
    assert reply["data"] == {"code": "unauthorized"}


async def test_expired_token_on_the_upgrade_is_refused_before_upgrading(
    js: JsClients, gateway_pair: list[Service]
) -> None:
    reply = await js.connect("old", gateway_pair[0].url, "/chat",
                             query={"token": make_token("old", ttl=-3600)})
    assert reply["type"] == "connect_error"
    assert reply["message"] == "websocket error"  # the HTTP 401 as socket.io-client reports it


async def test_unknown_namespace_gets_invalid_namespace(
    js: JsClients, gateway_pair: list[Service]
) -> None:
    reply = await js.connect("eve", gateway_pair[0].url, "/admin", make_token("eve"))
    assert reply["type"] == "connect_error"
    assert reply["message"] == "Invalid namespace"


async def test_bad_requests_get_error_acks_and_the_socket_stays_usable(
    js: JsClients, gateway_pair: list[Service]
) -> None:
    await js.connect("dan", gateway_pair[0].url, "/chat", make_token("dan"))
    for room in ("x.>", "*", "a b", "a.b", "r" * 129):
        ack = await js.call("dan", "room:join", {"room": room})
        assert ack["ok"] is False and ack["error"]["code"] == "bad_request", room
    ack = await js.call("dan", "no:such-event", {"x": 1})
    assert ack["error"]["code"] == "unknown_event"
    ack = await js.call("dan", "message:send", {"room": "room:z", "text": 5, "id": "1"})
    assert ack["error"]["code"] == "bad_request"
    await js.emit("dan", "room:join", "not an object")
    (error,) = await js.expect_event("dan", "request:error")
    assert error["code"] == "bad_request" and error["event"] == "room:join"
    assert (await js.call("dan", "room:join", {"room": "room:ok"}))["ok"] is True
