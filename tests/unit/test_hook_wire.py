"""The hook wire contract as data: request bodies, ``$bin`` both ways, replies parsed into
typed plans, and every malformed reply a :class:`Malformed` naming the field."""

from __future__ import annotations

import orjson
import pytest

from gateway.hook_wire import (
    AppError,
    ConnectPlan,
    EventPlan,
    Malformed,
    Publish,
    connect_reply,
    connect_request,
    event_reply,
    event_request,
    from_wire,
    idempotency_id,
    to_wire,
)


def test_bytes_travel_as_bin_objects_both_ways() -> None:
    value = [b"\x00\xff", {"nested": [b"ab"]}, "text", 1]
    wired = to_wire(value)
    assert wired == [{"$bin": "AP8="}, {"nested": [{"$bin": "YWI="}]}, "text", 1]
    assert from_wire(wired) == value


def test_an_object_with_more_keys_than_bin_is_data() -> None:
    assert from_wire({"$bin": "AA==", "x": 1}) == {"$bin": "AA==", "x": 1}


@pytest.mark.parametrize("bad", [{"$bin": 5}, {"$bin": "not base64!"}, {"$bin": "AAA"}])
def test_bad_base64_is_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        from_wire(bad)


def test_idempotency_key_from_the_first_arguments_id() -> None:
    assert idempotency_id("alice", [{"id": "k1"}], "rnd") == "alice:k1"
    assert idempotency_id("alice", [{"id": "x" * 65}], "rnd") == "rnd"
    assert idempotency_id("alice", [{"id": ""}], "rnd") == "rnd"
    assert idempotency_id("alice", [{"id": 7}], "rnd") == "rnd"
    assert idempotency_id("alice", ["k1"], "rnd") == "rnd"
    assert idempotency_id("alice", [], "rnd") == "rnd"


def test_event_request_body() -> None:
    body = orjson.loads(event_request("/orders", "order:place", [{"id": "k"}, b"\x01"], True,
                                      "sid1", "alice:k", "alice", {"tier": 1}, "gw-1"))
    assert body == {"nsp": "/orders", "event": "order:place",
                    "args": [{"id": "k"}, {"$bin": "AQ=="}], "ack": True, "sid": "sid1",
                    "id": "alice:k", "user": "alice", "data": {"tier": 1}, "gateway": "gw-1"}


def test_connect_request_leaves_the_token_out() -> None:
    body = orjson.loads(connect_request("/orders", "sid1", "r1", None, None,
                                        {"token": "secret", "key": "k"}, {"x-api-key": "v"},
                                        "gw-1"))
    assert body == {"nsp": "/orders", "sid": "sid1", "id": "r1", "user": None,
                    "claims": None, "auth": {"key": "k"}, "headers": {"x-api-key": "v"},
                    "gateway": "gw-1"}


def test_a_full_event_reply() -> None:
    raw = orjson.dumps({
        "ok": True, "ack": [{"total": 3}, {"$bin": "AQ=="}], "emit": [["note", {"$bin": "Ag=="}]],
        "join": ["room:a"], "leave": ["room:b"], "data": {"n": 1},
        "publish": [{"room": "room:a", "event": "placed", "data": {"id": 1}}],
        "disconnect": True, "future_key": "ignored"})
    assert event_reply(raw) == EventPlan(
        [{"total": 3}, b"\x01"], [["note", b"\x02"]], ["room:a"], ["room:b"],
        [Publish("room:a", "placed", {"id": 1})], True, True, {"n": 1})


def test_an_empty_ok_reply_acks_with_no_arguments_and_keeps_the_data() -> None:
    plan = event_reply(b'{"ok":true}')
    assert plan == EventPlan([], [], [], [], [], False, False, None)


def test_the_applications_error_is_passed_on_unchanged() -> None:
    plan = event_reply(b'{"ok":false,"error":{"code":"out_of_stock","message":"none left",'
                       b'"data":{"left":0}}}')
    assert plan == AppError("out_of_stock", "none left", {"left": 0}, True)
    assert plan.body() == {"ok": False, "error": {"code": "out_of_stock",
                                                  "message": "none left", "data": {"left": 0}}}
    assert event_reply(b'{"ok":false,"error":{"code":"x","message":"m"}}').body() == {
        "ok": False, "error": {"code": "x", "message": "m"}}


@pytest.mark.parametrize("raw", [
    b"not json", b"[]", b'{"ok":"yes"}', b'{"ok":true,"ack":{}}',
    b'{"ok":true,"emit":[["connect"]]}', b'{"ok":true,"emit":[[]]}',
    b'{"ok":true,"emit":"x"}', b'{"ok":true,"join":["bad room"]}',
    b'{"ok":true,"leave":[1]}', b'{"ok":true,"publish":[{"room":"room:a","event":"e"}]}',
    b'{"ok":true,"publish":{"room":"room:a"}}', b'{"ok":true,"disconnect":1}',
    b'{"ok":true,"ack":[{"$bin":"!"}]}', b'{"ok":false}', b'{"ok":false,"error":{"message":"m"}}',
    b'{"ok":false,"error":{"code":"","message":"m"}}',
])
def test_malformed_event_replies(raw: bytes) -> None:
    assert isinstance(event_reply(raw), Malformed)


def test_connect_replies() -> None:
    raw = orjson.dumps({"ok": True, "user": "u1", "data": {"plan": "pro"},
                        "rooms": ["room:*", "orders:*"], "join": ["orders:u1"],
                        "emit": [["welcome", {"hi": 1}]]})
    assert connect_reply(raw) == ConnectPlan("u1", ("room:*", "orders:*"), ["orders:u1"],
                                             [["welcome", {"hi": 1}]], {"plan": "pro"})
    assert connect_reply(b'{"ok":true}') == ConnectPlan(None, None, [], [], None)
    refusal = connect_reply(b'{"ok":false,"error":{"message":"bad key","data":{"why":1}}}')
    assert refusal == AppError("refused", "bad key", {"why": 1}, True)


@pytest.mark.parametrize("raw", [
    b'{"ok":true,"user":""}', b'{"ok":true,"user":5}', b'{"ok":true,"rooms":"room:*"}',
    b'{"ok":true,"rooms":[""]}', b'{"ok":true,"join":["no spaces"]}', b'{"ok":false}',
])
def test_malformed_connect_replies(raw: bytes) -> None:
    assert isinstance(connect_reply(raw), Malformed)


def test_hook_subjects_use_the_token_encoding() -> None:
    from shared.subjects import Subjects

    subjects = Subjects("sb")
    assert subjects.hook_event("/orders", "order:place") == "sb.hook.orders.event.order=3Aplace"
    assert subjects.hook_connect("/") == "sb.hook.root.connect"
    assert subjects.hook_connect("/orders") == "sb.hook.orders.connect"
