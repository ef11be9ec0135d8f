"""The ``/orders`` worker: a connect hook checking an API key, ``order:place`` acked after
validation, published to ``room:book`` once per idempotency key.

Retries of an order (same ``id``) are answered with the first ack and published once: the
replies are kept in a NATS KV bucket every replica shares, so a retry that lands on another
replica is caught too.
"""

from __future__ import annotations

import os
from typing import Any

from client.worker import Accept, ConnectRequest, Event, Refuse, Worker, kv_replies
from examples.orderbook.orders import BOOK_ROOM, ORDER_EVENT, check_login, parse_order

DEV_API_KEY = "demo-key"
"""The key of the local demo; set ``SB_ORDERBOOK_API_KEY`` anywhere else."""

API_KEY = os.environ.get("SB_ORDERBOOK_API_KEY", DEV_API_KEY)
PREFIX = os.environ.get("SB_SUBJECT_PREFIX", "sb")

app = Worker("/orders", dedup=kv_replies(bucket=f"{PREFIX}-orderbook-replies"))


@app.connect
async def connect(req: ConnectRequest) -> Accept:
    try:
        user = check_login(req.auth, API_KEY)
    except ValueError as exc:
        raise Refuse(str(exc), data={"hint": "connect with auth: {api_key, name}"}) from None
    return app.accept(user=user, data={"orders": 0}, join=[BOOK_ROOM],
                      emit=[("book:welcome", {"user": user, "room": BOOK_ROOM})])


@app.event("order:place")
async def place(ev: Event, payload: Any) -> dict[str, Any]:
    order = parse_order(ev.user or "", payload)
    ev.data = {"orders": int((ev.data or {}).get("orders", 0)) + 1}
    ev.publish(BOOK_ROOM, ORDER_EVENT, order.event())
    return {"ok": True, "id": order.id, "placed": ev.data["orders"]}
