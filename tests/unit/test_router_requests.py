"""The server API's validation: every bad input is a typed failure, never an exception."""

from __future__ import annotations

import orjson
import pytest

from router.answers import Failure
from router.requests import (
    DATA_MAX_BYTES,
    Kick,
    ListConnections,
    Publish,
    RoomPresence,
    Send,
    decode_json,
    parse,
)

GOOD = {"namespace": "/chat", "room": "room:lobby", "event": "news:flash", "data": {"a": 1}}


def failure(operation: str, body: object, user: object = None) -> Failure:
    result = parse(operation, body, user)
    assert isinstance(result, Failure), result
    return result


def test_publish_encodes_event_and_data_once() -> None:
    result = parse("publish", GOOD)
    assert result == Publish("/chat", "room:lobby", b'["news:flash",{"a":1}]', None)
    assert isinstance(result, Publish) and result.logged
    assert orjson.loads(result.body) == ["news:flash", {"a": 1}]


@pytest.mark.parametrize("namespace", ["/", "/live-updates"])
def test_ephemeral_namespaces_are_not_logged(namespace: str) -> None:
    result = parse("publish", {**GOOD, "namespace": namespace})
    assert isinstance(result, Publish) and not result.logged


@pytest.mark.parametrize("change", [
    {"namespace": "/nope"}, {"namespace": None}, {"namespace": "chat"},
    {"room": "x.>"}, {"room": "*"}, {"room": "a b"}, {"room": ""}, {"room": "r" * 129},
    {"room": 7},
    {"event": "connect"}, {"event": "disconnect"}, {"event": "a.b"}, {"event": ""},
    {"event": "e" * 65}, {"event": ["x"]},
    {"data": [1, 2]}, {"data": "text"}, {"data": None}, {"data": 1},
    {"id": ""}, {"id": "x" * 65}, {"id": "a b"}, {"id": 5},
    {"namespace": ["/chat"]}, {"namespace": {}},  # unhashable: a 400, not a TypeError (500)
])
def test_publish_bad_fields_are_bad_request(change: dict[str, object]) -> None:
    result = failure("publish", {**GOOD, **change})
    assert (result.status, result.code) == (400, "bad_request")


@pytest.mark.parametrize("missing", ["namespace", "room", "event", "data"])
def test_publish_missing_fields_are_bad_request(missing: str) -> None:
    body = {k: v for k, v in GOOD.items() if k != missing}
    assert failure("publish", body).code == "bad_request"


def test_data_over_64_kib_is_too_large() -> None:
    big = {"x": "a" * DATA_MAX_BYTES}
    result = failure("publish", {**GOOD, "data": big})
    assert (result.status, result.code) == (413, "too_large")
    fits = {"x": "a" * (DATA_MAX_BYTES - 8)}
    assert isinstance(parse("publish", {**GOOD, "data": fits}), Publish)


@pytest.mark.parametrize("depth", [300, 1000])
def test_data_nested_deeper_than_orjson_writes_is_bad_request(depth: int) -> None:
    raw = b'{"namespace":"/chat","room":"r","event":"e","data":' + b'{"a":' * depth + b"1" \
        + b"}" * (depth + 1)
    body = decode_json(raw)
    assert isinstance(body, dict)
    assert failure("publish", body).code == "bad_request"


def test_idempotency_id_is_scoped_by_room_and_cannot_collide_with_gateway_ids() -> None:
    first = parse("publish", {**GOOD, "id": "m-1"})
    other_room = parse("publish", {**GOOD, "room": "room:other", "id": "m-1"})
    assert isinstance(first, Publish) and isinstance(other_room, Publish)
    assert first.msg_id == "api:room=3Alobby:m-1"
    assert first.msg_id != other_room.msg_id
    # gateway ids are "<encoded sub>.<id>": their first "." token never holds a ":"
    assert ":" in first.msg_id.split(".")[0]


@pytest.mark.parametrize("body", [[], "x", 3, None])
def test_non_object_bodies_are_bad_request(body: object) -> None:
    assert failure("publish", body).code == "bad_request"


def test_send_targets_the_users_own_room_whatever_the_user_id_holds() -> None:
    body = {"namespace": "/notifications", "event": "note", "data": {}}
    result = parse("send", body, "a.b *>/é")
    assert isinstance(result, Send)
    assert result.user == "a.b *>/é"
    assert result.publish.room == "user:a.b *>/é"
    assert result.publish.logged


def test_send_ignores_a_room_in_the_body() -> None:
    body = {"namespace": "/chat", "event": "note", "data": {}, "room": "room:elsewhere"}
    result = parse("send", body, "u")
    assert isinstance(result, Send) and result.publish.room == "user:u"


@pytest.mark.parametrize("operation", ["send", "connections", "kick"])
@pytest.mark.parametrize("user", [None, "", "u" * 129, 5, ["u"]])
def test_bad_users_are_bad_request(operation: str, user: object) -> None:
    body = {"namespace": "/chat", "event": "e", "data": {}}
    assert failure(operation, body, user).code == "bad_request"


def test_longest_user_is_accepted() -> None:
    assert parse("connections", {}, "u" * 128) == ListConnections("u" * 128)


def test_kick_body_is_optional_and_reason_bounded() -> None:
    assert parse("kick", None, "u") == Kick("u", None)
    assert parse("kick", {"reason": "spam"}, "u") == Kick("u", "spam")
    assert failure("kick", {"reason": 5}, "u").code == "bad_request"
    assert failure("kick", {"reason": "r" * 257}, "u").code == "bad_request"


def test_unknown_operation_is_not_found() -> None:
    assert failure("nope", {}, "u").status == 404
    assert failure("rooms", {"room": "r"}).status == 404


# --- presence -------------------------------------------------------------------------------

def test_presence_takes_room_and_namespace() -> None:
    body = {"room": "room:lobby", "namespace": "/notifications"}
    assert parse("presence", body) == RoomPresence("/notifications", "room:lobby")


def test_presence_namespace_defaults_to_chat() -> None:
    assert parse("presence", {"room": "room:lobby"}) == RoomPresence("/chat", "room:lobby")


def test_presence_ignores_a_user_and_other_fields() -> None:
    body = {"room": "r" * 128, "namespace": "/", "user": "x", "extra": [1]}
    assert parse("presence", body, "x") == RoomPresence("/", "r" * 128)


@pytest.mark.parametrize("body", [
    {}, {"room": None}, {"room": ""}, {"room": "r" * 129}, {"room": "x.>"}, {"room": "a b"},
    {"room": "room/x"}, {"room": 7}, {"room": ["room:a"]},
    {"room": "room:a", "namespace": "/nope"}, {"room": "room:a", "namespace": "chat"},
    {"room": "room:a", "namespace": ""}, {"room": "room:a", "namespace": None},
    {"room": "room:a", "namespace": ["/chat"]}, {"room": "room:a", "namespace": {"a": 1}},
    [], "room:a", None, 3,
])
def test_presence_bad_input_is_bad_request(body: object) -> None:
    result = failure("presence", body)
    assert (result.status, result.code) == (400, "bad_request")


def test_decode_json() -> None:
    assert decode_json(b'{"a":1}') == {"a": 1}
    bad = decode_json(b"{nope")
    assert isinstance(bad, Failure) and bad.code == "bad_request"
