"""The order book's rules, without I/O: what a valid order is and what its events carry.

Orders are validated here and nowhere else, so the worker's handlers stay a few lines and a
bad order is a typed ``bad_request`` naming the field, never a crash.
"""

from __future__ import annotations

import hmac
from dataclasses import asdict, dataclass
from typing import Any

from client.worker import HookError

SIDES = ("buy", "sell")
MAX_PRICE = 1_000_000
MAX_QTY = 1_000_000
NAME_MAX = 64
BOOK_ROOM = "room:book"
ORDER_EVENT = "book:order"


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    user: str
    side: str
    price: float
    qty: int

    def event(self) -> dict[str, Any]:
        """What the book's members receive (the gateway adds ``room``, ``seq``, ``prev``)."""
        return asdict(self)


def _bad(field: str, message: str) -> HookError:
    return HookError("bad_request", message, data={"field": field})


def parse_order(user: str, payload: Any) -> Order:
    """``{id, side, price, qty}`` from ``user``, or :class:`HookError` ``bad_request``."""
    if not isinstance(payload, dict):
        raise _bad("order", "an order is an object {id, side, price, qty}")
    key, side = payload.get("id"), payload.get("side")
    price, qty = payload.get("price"), payload.get("qty")
    if not isinstance(key, str) or not 1 <= len(key) <= NAME_MAX:
        raise _bad("id", f"id is a string of 1-{NAME_MAX} characters (the idempotency key)")
    if side not in SIDES:
        raise _bad("side", "side is 'buy' or 'sell'")
    if isinstance(price, bool) or not isinstance(price, int | float) or not (
            0 < price <= MAX_PRICE):
        raise _bad("price", f"price is a number above 0 and at most {MAX_PRICE}")
    if isinstance(qty, bool) or not isinstance(qty, int) or not 1 <= qty <= MAX_QTY:
        raise _bad("qty", f"qty is a whole number from 1 to {MAX_QTY}")
    return Order(key, user, side, float(price), qty)


def check_login(auth: dict[str, Any], api_key: str) -> str:
    """The user name of a connect whose ``auth`` is ``{api_key, name}``; ``ValueError`` says
    what is wrong (the connect hook refuses with it)."""
    given = auth.get("api_key")
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), api_key.encode()):
        raise ValueError("bad api key")
    name = auth.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX:
        raise ValueError(f"name is 1-{NAME_MAX} characters")
    return name.strip()
