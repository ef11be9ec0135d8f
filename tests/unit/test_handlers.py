"""The event handlers by plain calls: a validated payload and a context in, actions or a
failure out (``gateway/handlers.py``). The session tests drive them through the chains."""

from __future__ import annotations

import json
from typing import Any

from gateway import handlers
from gateway.actions import (
    AckTo,
    Announce,
    History,
    Join,
    Leave,
    NamespaceSocket,
    Publish,
    SendText,
)
from gateway.limits import LimitClass, Limits
from gateway.middleware import EventContext
from gateway.replies import Failure
from shared.jwtauth import Identity
from shared.ratelimit import TokenBucket

ALICE = Identity("alice", None, ("room:*",), 0.0)
ROOM = "room:general"
WALL = 1_764_662_400.25


def context(payload: Any, rooms: set[str] | None = None, durable: bool = True,
            now: float = 0.0, ack: int | None = 1) -> EventContext:
    socket = NamespaceSocket("/chat", "sid", ALICE, {"user:alice", *(rooms or set())},
                             durable=durable)
    buckets: dict[LimitClass, TokenBucket] = {}
    return EventContext(socket, "e", [payload], AckTo("/chat", ack), now, Limits(), buckets,
                        lambda: WALL)


def code(result: object) -> str:
    assert isinstance(result, Failure), result
    return result.code.value


def test_join_asks_the_shell_unless_already_joined() -> None:
    first = handlers.join(context({"room": ROOM}))
    assert isinstance(first, list) and isinstance(first[0], Join)
    again = handlers.join(context({"room": ROOM}, {ROOM}))
    assert again == [SendText('43/chat,1[{"ok":true,"room":"room:general"}]')]
    assert handlers.join(context({"room": ROOM}, {ROOM}, ack=None)) == []


def test_join_rules() -> None:
    assert code(handlers.join(context({"room": "user:bob"}))) == "forbidden"
    assert code(handlers.join(context({"room": "lobby"}))) == "forbidden"  # not room:*
    assert code(handlers.join(context({"room": "a.b"}))) == "bad_request"
    assert code(handlers.join(context({"room": ROOM, "since": 3}, durable=False))) == (
        "bad_request")


def test_leave_takes_the_room_off_and_acks_after_the_shell() -> None:
    ctx = context({"room": ROOM}, {ROOM})

    actions = handlers.leave(ctx)

    assert isinstance(actions, list)
    assert actions[0] == Announce(ctx.socket) and isinstance(actions[1], Leave)
    assert actions[2:] == [SendText('43/chat,1[{"ok":true}]')]
    assert ROOM not in ctx.socket.rooms
    assert handlers.leave(context({"room": ROOM})) == [SendText('43/chat,1[{"ok":true}]')]
    assert code(handlers.leave(context({"room": "user:alice"}))) == "forbidden"


def test_send_stamps_ts_from_the_injected_wall_clock() -> None:
    actions = handlers.send_message(context({"room": ROOM, "text": "hi", "id": "m1"}, {ROOM}))

    assert isinstance(actions, list)
    publish = actions[0]
    assert isinstance(publish, Publish) and publish.logged and publish.message_id == "m1"
    assert json.loads(publish.args) == ["message:received", {
        "room": ROOM, "id": "m1", "from": "alice", "text": "hi", "ts": int(WALL * 1000)}]


def test_send_rules() -> None:
    assert code(handlers.send_message(context({"room": ROOM, "text": "hi", "id": "m"}))) == (
        "forbidden")
    assert code(handlers.send_message(context({"room": ROOM, "text": " ", "id": "m"},
                                              {ROOM}))) == "bad_request"
    big = b"\0" * (Limits().attachment_max_bytes + 1)
    assert code(handlers.send_message(context({"room": ROOM, "text": "", "id": "m",
                                               "attachment": big}, {ROOM}))) == "too_large"


def test_history_takes_since_or_before_not_both() -> None:
    result = handlers.history(context({"room": ROOM, "before": 9}))
    assert isinstance(result, list) and result[0] == History(
        result[0].socket, ROOM, AckTo("/chat", 1), None, 9, handlers.HISTORY_DEFAULT_LIMIT)
    assert code(handlers.history(context({"room": ROOM, "since": 1, "before": 9}))) == (
        "bad_request")


def test_repeated_typing_starts_within_the_interval_are_only_acked() -> None:
    ctx = context({"room": ROOM}, {ROOM}, now=10.0)
    first = handlers.typing_start(ctx)
    assert isinstance(first, list) and [type(a).__name__ for a in first] == ["TypingChange"]

    ctx.now = 10.5
    assert handlers.typing_start(ctx) == [SendText('43/chat,1[{"ok":true}]')]
    ctx.now = 10.0 + Limits().typing_coalesce_s
    assert [type(a).__name__ for a in handlers.typing_start(ctx)] == ["TypingChange"]
