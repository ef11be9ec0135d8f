"""The order book example's rules and its worker's answers, by plain calls."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from client.worker import HookError
from examples.orderbook.orders import check_login, parse_order
from examples.orderbook.worker import app


def test_a_valid_order_and_its_event() -> None:
    order = parse_order("ann", {"id": "o-1", "side": "buy", "price": 101, "qty": 2})
    assert order.event() == {"id": "o-1", "user": "ann", "side": "buy", "price": 101.0,
                             "qty": 2}


@pytest.mark.parametrize(("payload", "field"), [
    ([1], "order"), ({"side": "buy", "price": 1, "qty": 1}, "id"),
    ({"id": "x", "side": "hold", "price": 1, "qty": 1}, "side"),
    ({"id": "x", "side": "buy", "price": 0, "qty": 1}, "price"),
    ({"id": "x", "side": "buy", "price": True, "qty": 1}, "price"),
    ({"id": "x", "side": "sell", "price": 1, "qty": 1.5}, "qty"),
])
def test_bad_orders_name_the_field(payload: Any, field: str) -> None:
    with pytest.raises(HookError) as failed:
        parse_order("ann", payload)
    assert failed.value.code == "bad_request" and failed.value.data == {"field": field}


def test_login_needs_the_key_and_a_name() -> None:
    assert check_login({"api_key": "k", "name": " bo "}, "k") == "bo"
    for auth in ({"api_key": "x", "name": "bo"}, {"api_key": "k"}, {}):
        with pytest.raises(ValueError):
            check_login(auth, "k")


async def test_the_worker_accepts_refuses_and_publishes() -> None:
    accepted = await app.handlers.answer_connect(orjson.dumps(
        {"nsp": "/orders", "auth": {"api_key": "demo-key", "name": "ann"}}))
    assert accepted["user"] == "ann" and accepted["join"] == ["room:book"]
    refused = await app.handlers.answer_connect(orjson.dumps({"auth": {"api_key": "no"}}))
    assert refused["error"]["message"] == "bad api key"
    reply = await app.handlers.answer_event(orjson.dumps({
        "nsp": "/orders", "event": "order:place", "ack": True, "user": "ann", "id": "",
        "args": [{"id": "o-1", "side": "sell", "price": 5, "qty": 1}], "data": {"orders": 0}}))
    assert reply["ack"] == [{"ok": True, "id": "o-1", "placed": 1}]
    assert reply["publish"][0]["room"] == "room:book" and reply["data"] == {"orders": 1}
