"""What handlers give back becomes the contract's reply: the ack from the return value, the
side effects in their fields, the session data only when it changed, names checked."""

from __future__ import annotations

from typing import Any

import pytest

from client.worker_context import Accept, Event, HookError, Refuse, accept, ack_args
from client.worker_wire import EventRequest


def event(data: Any = None, ack: bool = True) -> Event:
    return Event.of(EventRequest(nsp="/orders", event="order:place", args=[{"qty": 1}],
                                 ack=ack, sid="s1", id="alice:k1", user="alice", data=data,
                                 gateway="gw-1"))


def test_the_return_value_is_the_list_of_ack_arguments() -> None:
    assert ack_args(None) == []
    assert ack_args((1, "two")) == [1, "two"]
    assert ack_args([1, 2]) == [[1, 2]]
    assert ack_args({"ok": True}) == [{"ok": True}]
    assert event().reply({"ok": True}) == {"ok": True, "ack": [{"ok": True}]}


def test_an_event_without_an_ack_gets_no_ack_field() -> None:
    assert event(ack=False).reply("ignored") == {"ok": True}


def test_side_effects_land_in_their_fields() -> None:
    ev = event()
    ev.join("room:book")
    ev.leave("room:old")
    ev.publish("room:book", "book:update", {"bid": 3})
    ev.emit("hello", 1, b"\x01")
    ev.disconnect()
    assert ev.reply(None) == {
        "ok": True, "ack": [], "join": ["room:book"], "leave": ["room:old"],
        "publish": [{"room": "room:book", "event": "book:update", "data": {"bid": 3}}],
        "emit": [["hello", 1, b"\x01"]], "disconnect": True}
    assert (ev.user, ev.sid, ev.id, ev.gateway, ev.args) == (
        "alice", "s1", "alice:k1", "gw-1", [{"qty": 1}])


def test_session_data_is_sent_only_when_it_changed() -> None:
    unchanged = event({"n": 1})
    assert "data" not in unchanged.reply(None)
    mutated = event({"n": 1})
    mutated.data["n"] = 2
    assert mutated.reply(None)["data"] == {"n": 2}
    replaced = event(None)
    replaced.data = {"fresh": True}
    assert replaced.reply(None)["data"] == {"fresh": True}


@pytest.mark.parametrize("call", [
    lambda ev: ev.join("bad room"), lambda ev: ev.leave(""),
    lambda ev: ev.emit("disconnect"), lambda ev: ev.emit(""),
    lambda ev: ev.publish("room:x", "connect", {}),
])
def test_bad_names_are_refused_where_the_handler_calls(call: Any) -> None:
    with pytest.raises(ValueError):
        call(event())


def test_published_data_must_be_an_object() -> None:
    with pytest.raises(TypeError):
        event().publish("room:x", "e", [1])  # type: ignore[arg-type]


def test_accept_builds_the_connect_reply() -> None:
    assert Accept().reply() == {"ok": True}
    reply = accept(user="bob", data={"tier": "gold"}, rooms=["room:*"], join=["room:lobby"],
                   emit=[("welcome", {"n": 1})]).reply()
    assert reply == {"ok": True, "user": "bob", "data": {"tier": "gold"}, "rooms": ["room:*"],
                     "join": ["room:lobby"], "emit": [["welcome", {"n": 1}]]}
    with pytest.raises(ValueError):
        accept(join=["no spaces"]).reply()


def test_refusals_and_errors_carry_message_and_data() -> None:
    assert Refuse("bad api key", {"hint": "h"}).reply() == {
        "ok": False, "error": {"message": "bad api key", "data": {"hint": "h"}}}
    assert HookError("out_of_stock", "none left", {"left": 0}).reply() == {
        "ok": False, "error": {"code": "out_of_stock", "message": "none left",
                               "data": {"left": 0}}}
