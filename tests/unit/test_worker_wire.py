"""The hook wire contract as the worker SDK reads and writes it: subjects and their tokens,
request bodies (lenient about absent fields, strict about wrong types), ``$bin`` both ways."""

from __future__ import annotations

import orjson
import pytest

from client.worker_wire import (
    QUEUE,
    WireError,
    check_namespace,
    connect_subject,
    decode_binary,
    dumps,
    error_reply,
    event_subject,
    event_wildcard,
    parse_connect,
    parse_event,
    refusal,
)


def test_subjects_use_the_namespace_token_and_the_encoded_event() -> None:
    assert connect_subject("sb", "/orders") == "sb.hook.orders.connect"
    assert event_subject("sb", "/orders", "order:place") == "sb.hook.orders.event.order=3Aplace"
    assert event_subject("x", "/", "a.b c") == "x.hook.root.event.a=2Eb=20c"
    assert event_wildcard("sb", "/live-poll") == "sb.hook.live-poll.event.*"
    assert QUEUE == "hooks"


@pytest.mark.parametrize("name", ["orders", "/a/b", "/a.b", "/" + "x" * 65, "", "/*"])
def test_namespace_names_outside_the_contract_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        check_namespace(name)


def test_an_event_request_is_parsed_with_binary_arguments_as_bytes() -> None:
    raw = orjson.dumps({
        "nsp": "/orders", "event": "order:place", "ack": True, "sid": "s1", "id": "alice:k1",
        "user": "alice", "data": {"tier": "gold"}, "gateway": "gw-1",
        "args": [{"qty": 2, "blob": {"$bin": "AAEC"}}, {"$bin": ""}, {"$bin": 1}],
    })
    request = parse_event(raw)
    assert request.event == "order:place" and request.ack is True and request.id == "alice:k1"
    assert request.args == [{"qty": 2, "blob": b"\x00\x01\x02"}, b"", {"$bin": 1}]
    assert request.data == {"tier": "gold"} and request.user == "alice"


def test_absent_and_null_fields_take_their_defaults() -> None:
    request = parse_event(b'{"event":"e","args":null,"user":null}')
    assert request.args == [] and request.ack is False and request.user is None
    connect = parse_connect(b'{"nsp":"/orders","auth":null}')
    assert connect.auth == {} and connect.headers == {} and connect.claims is None


@pytest.mark.parametrize("raw", [
    b"not json", b"[1]", b'{"args":[]}', b'{"event":"e","args":{}}', b'{"event":"e","ack":1}',
    b'{"event":"e","args":[{"$bin":"***"}]}', b'{"event":5}',
])
def test_malformed_event_requests_are_wire_errors(raw: bytes) -> None:
    with pytest.raises(WireError):
        parse_event(raw)


def test_malformed_connect_requests_are_wire_errors() -> None:
    with pytest.raises(WireError):
        parse_connect(b'{"auth":"token"}')


def test_bytes_are_written_as_bin_and_read_back() -> None:
    value = {"a": b"\xff\x00", "b": [bytearray(b"x"), memoryview(b"yz")], "c": (1, 2)}
    raw = dumps(value)
    assert orjson.loads(raw) == {"a": {"$bin": "/wA="}, "b": [{"$bin": "eA=="},
                                                           {"$bin": "eXo="}], "c": [1, 2]}
    assert decode_binary(orjson.loads(raw)) == {"a": b"\xff\x00", "b": [b"x", b"yz"],
                                                "c": [1, 2]}
    with pytest.raises(TypeError):
        dumps({1, 2})


def test_error_and_refusal_bodies() -> None:
    assert error_reply("out_of_stock", "none left") == {
        "ok": False, "error": {"code": "out_of_stock", "message": "none left"}}
    assert error_reply("x", "m", {"n": 1})["error"]["data"] == {"n": 1}
    assert refusal("bad key", {"hint": "h"}) == {
        "ok": False, "error": {"message": "bad key", "data": {"hint": "h"}}}
    assert refusal("no") == {"ok": False, "error": {"message": "no"}}
