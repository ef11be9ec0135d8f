"""Application hooks in the session core, driven by plain calls: which events become
requests, in what order they leave, and what each reply (or its absence) turns into."""

from __future__ import annotations

import itertools
import json
from typing import Any

import orjson

from gateway import namespaces
from gateway.actions import (
    Action,
    Close,
    Closed,
    Failed,
    HookCall,
    HookFailure,
    HookObserved,
    Join,
    Leave,
    Opened,
    Publish,
    SendBinary,
)
from gateway.hooks import kept_headers
from gateway.session import Session, SessionConfig
from gateway.session_answers import Answers
from shared.namespaces import BUILT_IN, NamespaceSpec
from shared.protocol.errors import CloseCode
from shared.room_log import PublishResult
from tests.support.tokens import make_token
from tests.unit.test_session import VERIFIER, Client, reply, texts

ORDERS = "/orders"
TABLE = BUILT_IN.merged([
    NamespaceSpec(ORDERS, auth="hook", hooks=True, hook_concurrency=1, event_rate=5,
                  event_burst=3, hook_headers=("X-Api-Key",)),
    NamespaceSpec("/log", durable=True, hooks=True, hook_concurrency=2),
])
CHAINS = namespaces.build(None, TABLE)


def client(headers: dict[str, str] | None = None) -> Client:
    ids = (f"id{n}" for n in itertools.count(1))
    session = Session("eio-1", None, SessionConfig(gateway="gw-1", hook_request_max_bytes=2000),
                      CHAINS, VERIFIER, lambda: next(ids), 0.0, wall_clock=lambda: 1.0,
                      headers=headers)
    return Client(session)


def calls(actions: list[Action]) -> list[HookCall]:
    return [action for action in actions if isinstance(action, HookCall)]


def body(call: HookCall) -> Any:
    return orjson.loads(call.body)


def answer(c: Client, call: HookCall, outcome: bytes | HookFailure | dict[str, Any]
           ) -> list[Action]:
    raw = orjson.dumps(outcome) if isinstance(outcome, dict) else outcome
    actions = c.session.hook_answered(call, raw)
    for action in list(actions):
        if isinstance(action, Opened):
            c.sockets[action.socket.nsp] = action.socket
            actions.extend(c.session.opened(action.socket))
    return actions


def hooked(nsp: str = ORDERS, user: str = "u1") -> Client:
    """A client connected to a hooked namespace, the connect hook having said yes."""
    c = client()
    token = None if nsp == ORDERS else make_token(user)
    [call] = calls(c.connect(nsp, token=token))
    answer(c, call, {"ok": True, "user": user})
    assert nsp in c.sockets
    return c


# --- the connect hook --------------------------------------------------------------------


def test_connect_without_a_token_asks_the_hook_with_the_allowed_headers() -> None:
    c = client({"X-API-KEY": "k1", "Cookie": "secret"})
    actions = c.send('40/orders,{"key":"abc"}')
    [call] = calls(actions)
    assert call.event is None and call.nsp == ORDERS and call.timeout_ms == 2000
    sent = body(call)
    assert sent["user"] is None and sent["claims"] is None and sent["auth"] == {"key": "abc"}
    assert sent["headers"] == {"x-api-key": "k1"} and sent["gateway"] == "gw-1"
    assert not c.sockets


def test_a_bad_token_is_refused_before_the_hook() -> None:
    c = client()
    actions = c.connect(ORDERS, token="not-a-token")
    assert not calls(actions)
    assert texts(actions)[-1].startswith('44/orders,{"message":"unauthorized"')


def test_accepted_connect_sets_user_data_rooms_joins_and_emits_after_the_reply() -> None:
    c = client()
    [call] = calls(c.connect(ORDERS, token=None))
    actions = answer(c, call, {"ok": True, "user": "u7", "data": {"tier": "gold"},
                               "rooms": ["orders:*"], "join": ["orders:u7"],
                               "emit": [["welcome", {"hi": 1}]]})
    socket = c.sockets[ORDERS]
    assert socket.identity.sub == "u7" and socket.data == {"tier": "gold"}
    assert socket.rooms == {"user:u7", "orders:u7"}
    assert socket.identity.may_join("orders:x") and not socket.identity.may_join("room:x")
    frames = texts(actions)
    assert frames[0].startswith("40/orders,{\"sid\":")
    assert frames[1] == '42/orders,["welcome",{"hi":1}]'
    assert HookObserved(ORDERS, "connect", "connect", "ok") in actions


def test_the_tokens_user_wins_and_the_hook_may_add_data() -> None:
    c = client()
    [call] = calls(c.connect(ORDERS, token=make_token("alice")))
    assert body(call)["user"] == "alice" and body(call)["claims"]["sub"] == "alice"
    answer(c, call, {"ok": True, "user": "mallory", "data": 1})
    assert c.sockets[ORDERS].identity.sub == "alice"


def test_refusal_is_connect_error_with_the_applications_message_and_data() -> None:
    c = client()
    [call] = calls(c.connect(ORDERS, token=None))
    actions = answer(c, call, {"ok": False, "error": {"message": "bad key", "data": {"k": 1}}})
    assert texts(actions) == ['44/orders,{"message":"bad key","data":{"k":1}}']
    assert not c.sockets


def test_a_reply_without_user_and_no_token_is_an_internal_refusal() -> None:
    c = client()
    [call] = calls(c.connect(ORDERS, token=None))
    [frame] = texts(answer(c, call, {"ok": True}))
    assert json.loads(frame[len("44/orders,"):])["data"] == {"code": "internal"}


def test_an_unreachable_connect_hook_closes_with_1013() -> None:
    for failure in HookFailure:
        c = client()
        [call] = calls(c.connect(ORDERS, token=None))
        actions = answer(c, call, failure)
        assert Close(CloseCode.TRY_AGAIN_LATER, "connect hook unreachable") in actions


def test_a_second_connect_while_the_hook_decides_is_a_violation() -> None:
    c = client()
    c.connect(ORDERS, token=None)
    assert isinstance(c.connect(ORDERS, token=None)[0], Close)


def test_kept_headers_are_only_those_a_namespace_asks_for() -> None:
    assert kept_headers(CHAINS.values(), {"X-Api-Key": "1", "Other": "2"}) == {"x-api-key": "1"}


# --- events ------------------------------------------------------------------------------


def test_a_non_builtin_event_becomes_a_request_with_a_keyed_id() -> None:
    c = hooked()
    [call] = calls(c.emit(ORDERS, 1, "order:place", {"id": "k1", "qty": 2}))
    assert call.event == "order:place"
    sent = body(call)
    assert sent["id"] == "u1:k1" and sent["ack"] is True and sent["user"] == "u1"
    assert sent["args"] == [{"id": "k1", "qty": 2}] and sent["sid"] == c.sockets[ORDERS].sid
    c.session.hook_answered(call, b'{"ok":true}')
    [unkeyed] = calls(c.emit(ORDERS, 2, "order:place", {"qty": 2}))
    assert ":" not in body(unkeyed)["id"]


def test_reserved_names_and_builtins_never_leave() -> None:
    c = hooked()
    actions = c.emit(ORDERS, 1, "disconnecting", {})
    assert not calls(actions)
    assert reply(actions, ORDERS, 1)["error"]["code"] == "bad_request"
    assert not calls(c.emit(ORDERS, 2, "room:join", {"room": "room:a"}))


def test_the_ack_is_the_workers_answer_with_binary() -> None:
    c = hooked()
    [call] = calls(c.emit(ORDERS, 4, "order:place", {"qty": 1}))
    actions = answer(c, call, {"ok": True, "ack": [{"total": 3}, {"$bin": "AQI="}]})
    assert texts(actions)[0] == '461-/orders,4[{"total":3},{"_placeholder":true,"num":0}]'
    assert [a.data for a in actions if isinstance(a, SendBinary)] == [b"\x01\x02"]


def test_binary_arguments_go_as_bin() -> None:
    c = hooked()
    c.send('451-/orders,5["upload",{"_placeholder":true,"num":0}]')
    [call] = calls(c.send(b"\x00\x01"))
    assert body(call)["args"] == [{"$bin": "AAE="}]


def test_application_errors_pass_unchanged_and_malformed_replies_are_internal() -> None:
    c = hooked()
    [call] = calls(c.emit(ORDERS, 1, "e", {}))
    actions = answer(c, call, {"ok": False, "error": {"code": "nope", "message": "m",
                                                      "data": [1]}})
    assert reply(actions, ORDERS, 1) == {"ok": False, "error": {"code": "nope", "message": "m",
                                                                "data": [1]}}
    assert calls(actions) == []
    [call] = calls(c.emit(ORDERS, 2, "e", {}))
    assert reply(answer(c, call, b'{"ok":true,"join":["bad room"]}'), ORDERS, 2)["error"][
        "code"] == "internal"


def test_failures_are_typed_error_acks() -> None:
    for failure, code in ((HookFailure.TIMEOUT, "timeout"),
                          (HookFailure.UNAVAILABLE, "unavailable"),
                          (HookFailure.OVERLOADED, "overloaded")):
        c = hooked()
        [call] = calls(c.emit(ORDERS, 1, "e", {}))
        assert reply(answer(c, call, failure), ORDERS, 1)["error"]["code"] == code
    c = hooked()
    [call] = calls(c.emit(ORDERS, 1, "e", {}))
    assert reply(answer(c, call, b"{oops"), ORDERS, 1)["error"]["code"] == "internal"


def test_an_event_without_ack_fails_silently_but_counted() -> None:
    c = hooked()
    [call] = calls(c.emit(ORDERS, None, "e", {}))
    assert body(call)["ack"] is False
    actions = answer(c, call, HookFailure.TIMEOUT)
    assert texts(actions) == [] and Failed(ORDERS, "timeout") in actions


def test_one_in_flight_per_socket_the_rest_wait_in_order() -> None:
    c = hooked()
    [first] = calls(c.emit(ORDERS, 1, "e", {"n": 1}))
    assert calls(c.emit(ORDERS, 2, "e", {"n": 2})) == []
    assert calls(c.emit(ORDERS, 3, "e", {"n": 3})) == []
    [second] = calls(answer(c, first, {"ok": True}))
    assert body(second)["args"] == [{"n": 2}]
    [third] = calls(answer(c, second, HookFailure.TIMEOUT))  # a timeout frees the slot too
    assert body(third)["args"] == [{"n": 3}]
    assert calls(answer(c, third, {"ok": True})) == []


def test_the_event_bucket_limits_before_anything_leaves() -> None:
    c = hooked()
    sent = [c.emit(ORDERS, n, "e", {}) for n in range(1, 5)]
    assert reply(sent[3], ORDERS, 4)["error"]["code"] == "rate_limited"
    assert reply(sent[3], ORDERS, 4)["error"]["retry_after_ms"] > 0


def test_an_oversize_request_is_too_large() -> None:
    c = hooked()
    actions = c.emit(ORDERS, 1, "e", {"x": "y" * 3000})
    assert reply(actions, ORDERS, 1)["error"]["code"] == "too_large" and not calls(actions)


def test_side_effects_in_order_joins_leaves_publishes_then_ack_emit_disconnect() -> None:
    c = hooked()
    socket = c.sockets[ORDERS]
    socket.rooms.add("room:old")
    [call] = calls(c.emit(ORDERS, 9, "e", {}))
    actions = answer(c, call, {
        "ok": True, "ack": ["done"], "join": ["room:new"], "leave": ["room:old", "user:u1"],
        "data": {"v": 2}, "emit": [["note", 1]], "disconnect": True,
        "publish": [{"room": "room:new", "event": "placed", "data": {"a": 1}},
                    {"room": "room:x", "event": "placed", "data": {"b": {"$bin": "AQ=="}}}]})
    kinds = [type(a).__name__ for a in actions if isinstance(a, Join | Leave | Publish)]
    assert kinds == ["Join", "Leave", "Publish", "Publish"]
    assert socket.data == {"v": 2} and "room:old" not in socket.rooms
    assert "user:u1" in socket.rooms
    assert texts(actions) == []  # the ack waits for the publishes
    publishes = [a for a in actions if isinstance(a, Publish)]
    assert orjson.loads(publishes[0].args) == ["placed", {"a": 1, "room": "room:new"}]
    assert publishes[1].attachments == (b"\x01",) and not publishes[0].logged
    assert c.session.published(publishes[0], PublishResult(0, False)) == []
    done = c.session.published(publishes[1], PublishResult(0, False))
    assert texts(done)[:2] == ['43/orders,9["done"]', '42/orders,["note",1]']
    assert texts(done)[2] == "41/orders," and any(isinstance(a, Closed) for a in done)


def test_an_unconfirmed_publish_turns_the_ack_into_unavailable() -> None:
    c = hooked("/log", "u2")
    [call] = calls(c.emit("/log", 3, "e", {}))
    actions = answer(c, call, {"ok": True, "ack": [1],
                               "publish": [{"room": "room:a", "event": "p", "data": {}}]})
    [publish] = [a for a in actions if isinstance(a, Publish)]
    assert publish.logged
    assert reply(c.session.published(publish, None), "/log", 3)["error"]["code"] == (
        "unavailable")


def test_concurrency_two_sends_two_and_late_replies_for_a_gone_socket_drop() -> None:
    c = hooked("/log", "u2")
    first = calls(c.emit("/log", 1, "e", {}))
    second = calls(c.emit("/log", 2, "e", {}))
    assert len(first) == 1 and len(second) == 1
    c.session.transport_closed()
    assert c.session.hook_answered(first[0], b'{"ok":true}') == []


def test_answers_is_the_sessions_base() -> None:
    assert issubclass(Session, Answers)
