"""The server API's operations and front door on fakes: what each call publishes, looks up,
kicks, asks presence and answers; rate limiting with an injected clock; failures as 503 and
500."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.broker import BrokerUnavailable, PublishResult
from router.answers import Failure
from router.api import Api
from router.operations import (
    Operations,
    PresenceUnavailable,
    connections_in,
    listing,
    presence_answer,
)
from router.requests import RoomPresence
from shared.ratelimit import TokenBucket
from shared.registry import ConnectionInfo
from shared.registry_kv import RegistryUnavailable

CHAT = ("/chat",)
BOTH = ("/", "/chat")
LIVE = {
    "c2": ConnectionInfo("gw-b", BOTH, 20.0),
    "c1": ConnectionInfo("gw-a", CHAT, 10.0),
    "c3": ConnectionInfo("gw-a", ("/notifications",), 30.0),
}


class Fakes:
    def __init__(self, live: dict[str, ConnectionInfo] | None = None) -> None:
        self.live = dict(LIVE if live is None else live)
        self.published: list[tuple[str, str, bytes, str | None, bool]] = []
        self.kicks: list[tuple[str, str, str | None]] = []
        self.inbox: list[tuple[str, bytes]] = []
        self.kick_answers: dict[str, int | None] = {}
        self.registry_down = False
        self.broker_down = False
        self.presence_queries: list[tuple[str, str]] = []
        self.presence_reply: object = {"ok": True, "room": "room:a", "users": ["alice", "bob"],
                                       "count": 2, "truncated": False}
        self.presence_down = False

    async def lookup(self, user: str) -> dict[str, ConnectionInfo]:
        if self.registry_down:
            raise RegistryUnavailable("down")
        return self.live

    async def publish(self, nsp: str, room: str, body: bytes, msg_id: str | None = None,
                      logged: bool = False) -> PublishResult:
        if self.broker_down:
            raise BrokerUnavailable("down")
        self.published.append((nsp, room, body, msg_id, logged))
        return PublishResult(len(self.published) if logged else None)

    async def store_inbox(self, user: str, body: bytes, msg_id: str | None = None) -> None:
        if self.broker_down:
            raise BrokerUnavailable("down")
        self.inbox.append((user, body))

    async def kick(self, gateway: str, user: str, reason: str | None) -> int | None:
        self.kicks.append((gateway, user, reason))
        return self.kick_answers.get(gateway, 1)

    async def presence(self, namespace: str, room: str) -> object:
        self.presence_queries.append((namespace, room))
        if self.presence_down:
            raise PresenceUnavailable("no presence replica is running")
        if isinstance(self.presence_reply, dict) and self.presence_reply.get("ok") is True:
            return {**self.presence_reply, "room": room}
        return self.presence_reply

    def operations(self) -> Operations:
        return Operations(self.lookup, self, self.kick, self.presence)

    def api(self, rate: float = 100.0, burst: float = 100.0) -> Api:
        ops = self.operations()
        return Api(ops, TokenBucket.full(rate, burst, 0.0))


def test_connections_in_counts_only_the_namespace() -> None:
    assert connections_in(LIVE, "/chat") == 2
    assert connections_in(LIVE, "/") == 1
    assert connections_in(LIVE, "/live-updates") == 0


def test_listing_is_oldest_first_with_ids() -> None:
    assert listing(LIVE) == [
        {"id": "c1", "gateway": "gw-a", "namespaces": ["/chat"], "connected_at": 10.0},
        {"id": "c2", "gateway": "gw-b", "namespaces": ["/", "/chat"], "connected_at": 20.0},
        {"id": "c3", "gateway": "gw-a", "namespaces": ["/notifications"],
         "connected_at": 30.0},
    ]


async def test_publish_goes_to_the_room_logged_in_durable_namespaces() -> None:
    fakes = Fakes()
    body = {"namespace": "/chat", "room": "room:a", "event": "e", "data": {"k": "v"}, "id": "1"}
    answer = await fakes.api().handle("publish", body, None, 0.0)
    assert (answer.status, answer.body) == (200, {"ok": True, "seq": 1, "duplicate": False})
    assert fakes.published == [("/chat", "room:a", b'["e",{"k":"v"}]', "api:room=3Aa:1", True)]


async def test_publish_in_an_ephemeral_namespace_has_no_seq() -> None:
    fakes = Fakes()
    body = {"namespace": "/live-updates", "room": "room:a", "event": "e", "data": {}}
    answer = await fakes.api().handle("publish", body, None, 0.0)
    assert answer.body == {"ok": True, "seq": None, "duplicate": False}
    assert fakes.published[0][4] is False


async def test_send_publishes_to_the_user_room_and_counts_that_namespace() -> None:
    fakes = Fakes()
    body = {"namespace": "/chat", "event": "note", "data": {"n": 1}}
    answer = await fakes.api().handle("send", body, "alice", 0.0)
    assert answer.body == {"ok": True, "connections": 2, "offline": False, "stored": False,
                           "seq": 1, "duplicate": False}
    assert [p[:2] for p in fakes.published] == [("/chat", "user:alice")]


async def test_send_to_an_offline_user_is_not_an_error() -> None:
    fakes = Fakes(live={})
    body = {"namespace": "/live-updates", "event": "note", "data": {}}
    answer = await fakes.api().handle("send", body, "nobody", 0.0)
    assert answer.status == 200
    assert answer.body["offline"] is True and answer.body["connections"] == 0
    assert len(fakes.published) == 1  # gateways without the user have no interest in it
    assert answer.body["stored"] is False and fakes.inbox == []


@pytest.mark.parametrize("live", [{}, {"c1": ConnectionInfo("gw-a", ("/chat",), 1.0)}])
async def test_notifications_to_a_user_offline_there_are_kept_in_the_inbox(
        live: dict[str, ConnectionInfo]) -> None:
    fakes = Fakes(live=live)
    body = {"namespace": "/notifications", "event": "note", "data": {"n": 1}}
    answer = await fakes.api().handle("send", body, "bob", 0.0)
    assert answer.body == {"ok": True, "connections": 0, "offline": True, "stored": True,
                           "seq": None, "duplicate": False}
    assert fakes.inbox == [("bob", b'["note",{"n":1}]')]
    assert fakes.published == []


async def test_notifications_to_a_user_online_there_go_live() -> None:
    fakes = Fakes()
    body = {"namespace": "/notifications", "event": "note", "data": {}}
    answer = await fakes.api().handle("send", body, "bob", 0.0)
    assert (answer.body["connections"], answer.body["stored"]) == (1, False)
    assert fakes.inbox == [] and fakes.published[0][:2] == ("/notifications", "user:bob")


async def test_send_does_not_publish_when_the_registry_is_down() -> None:
    fakes = Fakes()
    fakes.registry_down = True
    body = {"namespace": "/chat", "event": "note", "data": {}}
    answer = await fakes.api().handle("send", body, "alice", 0.0)
    assert (answer.status, answer.body["error"]["code"]) == (503, "unavailable")
    assert fakes.published == []


async def test_broker_down_is_unavailable() -> None:
    fakes = Fakes()
    fakes.broker_down = True
    body = {"namespace": "/chat", "room": "room:a", "event": "e", "data": {}}
    answer = await fakes.api().handle("publish", body, None, 0.0)
    assert (answer.status, answer.body["error"]["code"]) == (503, "unavailable")


async def test_connections_lists_the_live_ones() -> None:
    answer = await Fakes().api().handle("connections", {}, "alice", 0.0)
    assert answer.body == {"ok": True, "connections": listing(LIVE)}


async def test_kick_asks_each_gateway_once_and_sums() -> None:
    fakes = Fakes()
    fakes.kick_answers = {"gw-a": 2, "gw-b": 1}
    answer = await fakes.api().handle("kick", {"reason": "spam"}, "alice", 0.0)
    assert answer.body == {"ok": True, "kicked": 3, "unreached": 0, "reason": "spam"}
    assert sorted(fakes.kicks) == [("gw-a", "alice", "spam"), ("gw-b", "alice", "spam")]


async def test_kick_counts_a_silent_gateway_as_unreached() -> None:
    fakes = Fakes()
    fakes.kick_answers = {"gw-a": 2, "gw-b": None}
    answer = await fakes.api().handle("kick", None, "alice", 0.0)
    assert answer.body == {"ok": True, "kicked": 2, "unreached": 1, "reason": None}


async def test_kick_of_an_offline_user_kicks_nothing() -> None:
    fakes = Fakes(live={})
    answer = await fakes.api().handle("kick", None, "alice", 0.0)
    assert answer.body["kicked"] == 0 and fakes.kicks == []


async def test_rate_limit_answers_429_with_retry_after_and_does_nothing() -> None:
    fakes = Fakes()
    api = fakes.api(rate=10.0, burst=2.0)
    body = {"namespace": "/chat", "room": "room:a", "event": "e", "data": {}}
    for _ in range(2):
        assert (await api.handle("publish", body, None, 0.0)).status == 200
    limited = await api.handle("publish", body, None, 0.0)
    assert limited.status == 429
    assert limited.body["error"] == {"code": "rate_limited",
                                     "message": "over the router's API rate limit",
                                     "retry_after_ms": 100}
    assert len(fakes.published) == 2
    assert (await api.handle("publish", body, None, 0.1)).status == 200


async def test_a_decoding_failure_is_answered_as_is() -> None:
    answer = await Fakes().api().handle("publish", Failure(400, "bad_request", "x"), None, 0.0)
    assert answer.body == {"ok": False, "error": {"code": "bad_request", "message": "x"}}


async def test_a_bug_is_a_500_not_a_crash() -> None:
    class Broken(Fakes):
        async def lookup(self, user: str) -> dict[str, ConnectionInfo]:
            raise KeyError("bug")

    answer = await Broken().api().handle("connections", {}, "alice", 0.0)
    assert (answer.status, answer.body["error"]["code"]) == (500, "internal")


async def test_nats_reply_carries_the_status() -> None:
    answer = await Fakes().api().handle("connections", {}, "", 0.0)
    assert answer.with_status()["status"] == 400
    assert orjson.loads(orjson.dumps(answer.with_status()))["ok"] is False


@pytest.mark.parametrize("operation", ["publish", "send", "connections", "kick", "presence"])
async def test_every_operation_rejects_garbage_without_side_effects(operation: str) -> None:
    fakes = Fakes()
    for body in ([], "x", 1, {"namespace": "/x"}):
        if operation in {"connections", "kick"} and isinstance(body, dict):
            continue
        answer = await fakes.api().handle(operation, body, "alice", 0.0)
        assert answer.status == 400, (operation, body)
    assert fakes.published == [] and fakes.kicks == [] and fakes.presence_queries == []


# --- presence -------------------------------------------------------------------------------

LOBBY = RoomPresence("/chat", "room:lobby")


async def test_presence_asks_for_the_room_and_lists_its_users() -> None:
    fakes = Fakes()
    answer = await fakes.api().handle("presence", {"room": "room:lobby"}, None, 0.0)
    assert (answer.status, answer.body) == (200, {
        "ok": True, "room": "room:lobby", "namespace": "/chat", "users": ["alice", "bob"],
        "count": 2, "truncated": False})
    assert fakes.presence_queries == [("/chat", "room:lobby")]


async def test_presence_passes_the_namespace_on() -> None:
    fakes = Fakes()
    body = {"room": "room:x", "namespace": "/live-updates"}
    answer = await fakes.api().handle("presence", body, None, 0.0)
    assert answer.body["namespace"] == "/live-updates"
    assert fakes.presence_queries == [("/live-updates", "room:x")]


async def test_presence_bad_input_never_reaches_presence() -> None:
    fakes = Fakes()
    for body in ({"room": "x.>"}, {"room": "room:a", "namespace": "/nope"}, [], None):
        answer = await fakes.api().handle("presence", body, None, 0.0)
        assert (answer.status, answer.body["error"]["code"]) == (400, "bad_request"), body
    assert fakes.presence_queries == []


async def test_no_presence_replica_is_503_unavailable() -> None:
    fakes = Fakes()
    fakes.presence_down = True
    answer = await fakes.api().handle("presence", {"room": "room:a"}, None, 0.0)
    assert answer.status == 503
    assert answer.body == {"ok": False, "error": {
        "code": "unavailable",
        "message": "presence is unavailable: no presence replica is running"}}
    assert answer.with_status()["status"] == 503


async def test_presence_is_rate_limited_with_the_other_operations() -> None:
    fakes = Fakes()
    api = fakes.api(rate=10.0, burst=1.0)
    assert (await api.handle("connections", {}, "alice", 0.0)).status == 200
    limited = await api.handle("presence", {"room": "room:a"}, None, 0.0)
    assert (limited.status, limited.body["error"]["code"]) == (429, "rate_limited")
    assert fakes.presence_queries == []


def test_presence_answer_passes_an_empty_room_and_truncation_through() -> None:
    empty = {"ok": True, "room": "room:lobby", "users": [], "count": 0, "truncated": False}
    assert presence_answer(LOBBY, empty).body == {
        "ok": True, "room": "room:lobby", "namespace": "/chat", "users": [], "count": 0,
        "truncated": False}
    cut = {"ok": True, "room": "room:lobby", "users": ["a"], "count": 5, "truncated": True}
    answer = presence_answer(LOBBY, cut)
    assert (answer.status, answer.body["count"], answer.body["truncated"]) == (200, 5, True)


@pytest.mark.parametrize(("code", "status"), [("bad_request", 400), ("unavailable", 503)])
def test_presence_errors_keep_their_code(code: str, status: int) -> None:
    reply = {"ok": False, "error": {"code": code, "message": "presence is starting"}}
    answer = presence_answer(LOBBY, reply)
    assert answer.status == status
    assert answer.body["ok"] is False and answer.body["error"]["code"] == code
    assert "presence is starting" in answer.body["error"]["message"]


GOOD_REPLY: dict[str, Any] = {"ok": True, "room": "room:lobby", "users": ["a"], "count": 1,
                              "truncated": False}


@pytest.mark.parametrize("reply", [
    None, [], "ok", 1,
    {}, {"ok": "true"},
    {**GOOD_REPLY, "users": None}, {**GOOD_REPLY, "users": "a"}, {**GOOD_REPLY, "users": [1]},
    {**GOOD_REPLY, "count": None}, {**GOOD_REPLY, "count": True}, {**GOOD_REPLY, "count": -1},
    {**GOOD_REPLY, "count": 1.0}, {**GOOD_REPLY, "count": 0},
    {**GOOD_REPLY, "truncated": None}, {**GOOD_REPLY, "truncated": 0},
    {**GOOD_REPLY, "room": "room:other"}, {k: v for k, v in GOOD_REPLY.items() if k != "room"},
    {"ok": False}, {"ok": False, "error": "bad"}, {"ok": False, "error": {"code": "internal"}},
    {"ok": False, "error": {"code": ["x"]}}, {"ok": None, "error": {"code": "bad_request"}},
])
def test_an_unreadable_presence_reply_is_503_never_500(reply: object) -> None:
    answer = presence_answer(LOBBY, reply)
    assert (answer.status, answer.body["error"]["code"]) == (503, "unavailable"), reply


async def test_a_bug_in_the_presence_asker_is_a_500_not_a_crash() -> None:
    class Broken(Fakes):
        async def presence(self, namespace: str, room: str) -> object:
            raise KeyError("bug")

    answer = await Broken().api().handle("presence", {"room": "room:a"}, None, 0.0)
    assert (answer.status, answer.body["error"]["code"]) == (500, "internal")
