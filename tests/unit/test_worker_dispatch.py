"""The worker's core answers every request body: handlers' returns and raises become the
contract's replies, bad bodies and argument counts are ``bad_request``, unknown events
``unknown_event``, a crashing handler ``internal`` (and the next request is served)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from client.worker_context import Accept, Event, HookError, Refuse
from client.worker_dedup import Deduplicator, MemoryReplyStore
from client.worker_dispatch import Handlers, encode
from client.worker_metrics import outcome
from client.worker_wire import ConnectRequest


def body(**fields: Any) -> bytes:
    return orjson.dumps({"nsp": "/orders", "sid": "s1", "gateway": "gw-1", **fields})


def event_body(event: str, *args: Any, ack: bool = True, id: str = "alice:k1") -> bytes:
    return body(event=event, args=list(args), ack=ack, id=id, user="alice", data=None)


def orders(dedup: bool = False) -> Handlers:
    handlers = Handlers("/orders", Deduplicator(MemoryReplyStore()) if dedup else None)
    placed: list[Any] = []

    async def connect(req: ConnectRequest) -> Accept | None:
        if req.auth.get("api_key") != "k":
            raise Refuse("bad api key", {"hint": "auth.api_key"})
        if req.auth.get("name") == "anon":
            return None
        return Accept(user=req.auth["name"], join=["room:lobby"])

    async def place(ev: Event, order: dict[str, Any]) -> Any:
        if order.get("qty", 0) <= 0:
            raise HookError("bad_request", "qty must be positive", {"field": "qty"})
        placed.append(order)
        ev.publish("room:book", "book:update", {"n": len(placed)})
        return {"ok": True, "order": len(placed)}, b"\x01"

    def crash(ev: Event) -> None:
        raise RuntimeError("bug")

    handlers.add_connect(connect)
    handlers.add_event("order:place", place)
    handlers.add_event("crash", crash)
    handlers.add_event("set", lambda ev: {1, 2})
    return handlers


async def test_connect_accepts_refuses_and_accepts_by_default() -> None:
    handlers = orders()
    ok = await handlers.answer_connect(body(auth={"api_key": "k", "name": "bob"}))
    assert ok == {"ok": True, "user": "bob", "join": ["room:lobby"]}
    assert await handlers.answer_connect(body(auth={"api_key": "k", "name": "anon"})) == {
        "ok": True}
    refused = await handlers.answer_connect(body(auth={"api_key": "nope"}))
    assert refused == {"ok": False, "error": {"message": "bad api key",
                                              "data": {"hint": "auth.api_key"}}}
    assert outcome(refused) == "refused"


async def test_a_crashing_or_malformed_connect_is_refused_with_a_code() -> None:
    handlers = Handlers("/orders")

    def connect(req: ConnectRequest) -> Any:
        return "yes"  # neither Accept nor None

    handlers.add_connect(connect)
    crashed = await handlers.answer_connect(body())
    assert crashed["error"]["data"] == {"code": "internal"}
    bad = await handlers.answer_connect(b"[]")
    assert bad["ok"] is False and bad["error"]["data"] == {"code": "bad_request"}


async def test_an_event_is_answered_with_its_ack_and_side_effects() -> None:
    reply = await orders().answer_event(event_body("order:place", {"qty": 2}))
    assert reply == {"ok": True, "ack": [{"ok": True, "order": 1}, b"\x01"],
                     "publish": [{"room": "room:book", "event": "book:update",
                                  "data": {"n": 1}}]}
    assert orjson.loads(encode(reply))["ack"][1] == {"$bin": "AQ=="}
    assert outcome(reply) == "ok"


@pytest.mark.parametrize(("raw", "code"), [
    (event_body("order:place", {"qty": 0}), "bad_request"),
    (event_body("order:place"), "bad_request"),
    (event_body("order:place", {}, {}), "bad_request"),
    (event_body("nope", 1), "unknown_event"),
    (event_body("crash"), "internal"),
    (b"{", "bad_request"),
])
async def test_failures_are_typed_error_replies(raw: bytes, code: str) -> None:
    reply = await orders().answer_event(raw)
    assert reply["ok"] is False and outcome(reply) == code


async def test_the_handlers_own_error_keeps_its_data() -> None:
    reply = await orders().answer_event(event_body("order:place", {"qty": -1}))
    assert reply["error"] == {"code": "bad_request", "message": "qty must be positive",
                              "data": {"field": "qty"}}


async def test_an_answer_json_cannot_carry_is_sent_as_internal() -> None:
    reply = await orders().answer_event(event_body("set"))
    assert orjson.loads(encode(reply))["error"]["code"] == "internal"


async def test_with_dedup_a_retry_of_an_id_does_not_run_again() -> None:
    handlers = orders(dedup=True)
    first = await handlers.answer_event(event_body("order:place", {"qty": 1}))
    retry = await handlers.answer_event(event_body("order:place", {"qty": 1}))
    other = await handlers.answer_event(event_body("order:place", {"qty": 1}, id="alice:k2"))
    assert encode(retry) == encode({"ok": True, "ack": first["ack"]})  # the same answer
    assert other["ack"][0]["order"] == 2


@pytest.mark.parametrize("name", ["message:send", "room:join", "connect", "disconnect", ""])
def test_built_in_and_reserved_events_cannot_be_registered(name: str) -> None:
    with pytest.raises(ValueError):
        Handlers("/orders").add_event(name, lambda ev: None)
