"""The server API for backends against real NATS, two gateways, two router replicas and the
real socket.io-client: auth and bad input, room publishes across gateways, targeted sends to
every connection of a user and no other socket, offline users, connection listings, kicks,
the Python backend helper over NATS, a replica killed while requests are in flight, and room
presence answered by a real presence replica (on a subject prefix of its own)."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import nats
import orjson
import pytest
from nats.aio.client import Client

from client.backend import Backend, BackendError
from devcluster.natsserver import NatsServer, free_ports
from shared.registry import UserEntry
from shared.subjects import Subjects, encode_token
from tests.support import processes
from tests.support.jsclient import JsClients
from tests.support.processes import Service
from tests.support.timing import UNIT
from tests.support.tokens import SECRET, make_token

pytestmark = pytest.mark.integration

API_KEY = "router-test-api-key-0123456789abcdef"


def router(nats_url: str, **env: str) -> Service:
    (port,) = free_ports(1)
    base = {"SB_NATS_URL": nats_url, "SB_API_KEY": API_KEY, "SB_INSTANCE_ID": f"rt-{port}",
            "SB_LOG_LEVEL": "INFO"}
    return Service("router", {**base, **env}, port)


@pytest.fixture(scope="module")
def routers(nats_server: NatsServer, service_logs: Path) -> Iterator[list[Service]]:
    """Two router replicas (one queue group), stopped by PID whatever happens."""
    started: list[Service] = []
    try:
        for _ in range(2):
            service = router(nats_server.url)
            started.append(service)
            service.start(service_logs)
        yield started
    finally:
        for service in started:
            service.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10 * UNIT)) as s:
        yield s


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server.url)
    try:
        yield client
    finally:
        await client.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def call(http: aiohttp.ClientSession, service: Service, method: str, path: str,
               body: Any = None, key: str | None = API_KEY) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    async with http.request(method, service.url + path, json=body, headers=headers) as answer:
        return answer.status, await answer.json()


async def until(check: Callable[[], Awaitable[bool]], within: float = 10 * UNIT) -> None:
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 - polling the HTTP API
            await asyncio.sleep(0.05)


def events_named(js: JsClients, client: str, event: str) -> list[dict[str, Any]]:
    return [m for m in js.pending(client) if m["type"] == "event" and m["event"] == event]


# --- auth and bad input ---------------------------------------------------------------------

ENDPOINTS = [("POST", "/api/v1/publish"), ("POST", "/api/v1/users/u/send"),
             ("GET", "/api/v1/users/u/connections"), ("DELETE", "/api/v1/users/u/connections"),
             ("GET", "/api/v1/rooms/room:a/presence")]


@pytest.mark.parametrize("key", [None, "wrong-key", API_KEY + "x", ""])
async def test_every_endpoint_needs_the_api_key(
    http: aiohttp.ClientSession, routers: list[Service], key: str | None
) -> None:
    for method, path in ENDPOINTS:
        status, body = await call(http, routers[0], method, path,
                                  {"namespace": "/chat", "event": "e", "data": {}}, key)
        assert status == 401, (method, path)
        assert body == {"ok": False, "error": {"code": "unauthorized",
                                               "message": body["error"]["message"]}}


@pytest.mark.parametrize(("path", "body"), [
    ("/api/v1/publish", {"namespace": "/nope", "room": "room:a", "event": "e", "data": {}}),
    ("/api/v1/publish", {"namespace": "/chat", "room": "x.>", "event": "e", "data": {}}),
    ("/api/v1/publish", {"namespace": "/chat", "room": "room:a", "event": "connect",
                         "data": {}}),
    ("/api/v1/publish", {"namespace": "/chat", "room": "room:a", "event": "e", "data": [1]}),
    ("/api/v1/publish", {"namespace": "/chat", "room": "room:a", "event": "e"}),
    ("/api/v1/publish", ["not", "an", "object"]),
    ("/api/v1/users/u/send", {"namespace": "/chat", "event": "a b", "data": {}}),
    ("/api/v1/users/" + "u" * 129 + "/send", {"namespace": "/chat", "event": "e", "data": {}}),
])
async def test_bad_input_is_400(http: aiohttp.ClientSession, routers: list[Service],
                                path: str, body: Any) -> None:
    status, answer = await call(http, routers[1], "POST", path, body)
    assert status == 400
    assert answer["ok"] is False and answer["error"]["code"] == "bad_request"


async def test_unknown_paths_are_404_and_big_data_413(
    http: aiohttp.ClientSession, routers: list[Service]
) -> None:
    status, answer = await call(http, routers[0], "GET", "/api/v1/rooms")
    assert (status, answer["error"]["code"]) == (404, "not_found")
    big = {"namespace": "/chat", "room": "room:a", "event": "e", "data": {"x": "y" * 70_000}}
    status, answer = await call(http, routers[0], "POST", "/api/v1/publish", big)
    assert (status, answer["error"]["code"]) == (413, "too_large")


# --- publish ------------------------------------------------------------------------------------

async def test_publish_reaches_room_members_on_both_gateways(
    js: JsClients, http: aiohttp.ClientSession, gateway_pair: list[Service],
    routers: list[Service]
) -> None:
    room = unique("room:api")
    for name, gateway in (("a", gateway_pair[0]), ("b", gateway_pair[1])):
        assert (await js.connect(name, gateway.url, "/chat", make_token(name)))["type"] == \
            "connect"
        assert (await js.call(name, "room:join", {"room": room}))["ok"] is True

    status, answer = await call(http, routers[0], "POST", "/api/v1/publish", {
        "namespace": "/chat", "room": room, "event": "news:flash", "data": {"headline": "hi"}})
    assert status == 200 and answer["ok"] is True and isinstance(answer["seq"], int)

    for name in ("a", "b"):
        payload, offset = await js.expect_event(name, "news:flash")
        assert payload == {"seq": answer["seq"], "prev": 0, "headline": "hi"}
        assert isinstance(offset, str)


async def test_publish_to_an_ephemeral_namespace_has_no_seq(
    js: JsClients, http: aiohttp.ClientSession, gateway_pair: list[Service],
    routers: list[Service]
) -> None:
    room = unique("room:live")
    await js.connect("a", gateway_pair[1].url, "/live-updates", make_token("a"))
    await js.call("a", "room:join", {"room": room})
    status, answer = await call(http, routers[1], "POST", "/api/v1/publish", {
        "namespace": "/live-updates", "room": room, "event": "tick", "data": {"n": 1}})
    assert (status, answer["seq"]) == (200, None)
    assert await js.expect_event("a", "tick") == [{"n": 1}]


# --- targeted send ------------------------------------------------------------------------------

async def test_send_reaches_every_connection_of_the_user_and_no_other_socket(
    js: JsClients, http: aiohttp.ClientSession, gateway_pair: list[Service],
    routers: list[Service]
) -> None:
    user, other = unique("target"), unique("bystander")
    room = unique("room:shared")
    sockets = {"u0": (user, 0), "u1": (user, 1), "o0": (other, 0), "o1": (other, 1)}
    for name, (sub, index) in sockets.items():
        await js.connect(name, gateway_pair[index].url, "/chat", make_token(sub))
        await js.call(name, "room:join", {"room": room})

    status, answer = await call(http, routers[0], "POST", f"/api/v1/users/{user}/send",
                                {"namespace": "/chat", "event": "note", "data": {"n": 1}})
    assert status == 200
    assert answer == {"ok": True, "connections": 2, "offline": False, "stored": False,
                      "seq": answer["seq"], "duplicate": False}
    for name in ("u0", "u1"):
        payload, _ = await js.expect_event(name, "note")
        assert payload["n"] == 1 and payload["seq"] == answer["seq"]

    # The same router, namespace and stream carry a marker to the bystander afterwards: once
    # it arrives, the note would have arrived before it.
    await call(http, routers[0], "POST", f"/api/v1/users/{other}/send",
               {"namespace": "/chat", "event": "marker", "data": {}})
    for name in ("o0", "o1"):
        await js.expect_event(name, "marker")
        assert events_named(js, name, "note") == []
    assert events_named(js, "u0", "marker") == []


async def test_send_counts_only_connections_in_that_namespace(
    js: JsClients, http: aiohttp.ClientSession, gateway_pair: list[Service],
    routers: list[Service]
) -> None:
    user = unique("split")
    await js.connect("c", gateway_pair[0].url, "/chat", make_token(user))
    await js.connect("l", gateway_pair[1].url, "/live-updates", make_token(user))
    status, answer = await call(http, routers[1], "POST", f"/api/v1/users/{user}/send",
                                {"namespace": "/live-updates", "event": "ping", "data": {}})
    assert (status, answer["connections"], answer["offline"]) == (200, 1, False)
    assert await js.expect_event("l", "ping") == [{}]


async def test_an_offline_user_is_not_an_error_and_notifications_wait_in_the_inbox(
    js: JsClients, http: aiohttp.ClientSession, gateway_pair: list[Service],
    routers: list[Service]
) -> None:
    user = unique("away")
    path = f"/api/v1/users/{user}/send"
    status, answer = await call(http, routers[0], "POST", path,
                                {"namespace": "/chat", "event": "note", "data": {}})
    assert status == 200
    assert (answer["connections"], answer["offline"], answer["stored"]) == (0, True, False)

    status, answer = await call(http, routers[1], "POST", path,
                                {"namespace": "/notifications", "event": "note",
                                 "data": {"n": 7}})
    assert (status, answer["offline"], answer["stored"]) == (200, True, True)

    await js.connect("n", gateway_pair[1].url, "/notifications", make_token(user))
    payload, _ = await js.expect_event("n", "note")
    assert payload["n"] == 7


# --- connections --------------------------------------------------------------------------------

async def test_connections_lists_the_users_live_connections(
    js: JsClients, http: aiohttp.ClientSession, gateway_pair: list[Service],
    routers: list[Service]
) -> None:
    user = unique("listed")
    path = f"/api/v1/users/{user}/connections"
    assert await call(http, routers[0], "GET", path) == (200, {"ok": True, "connections": []})
    await js.connect("c", gateway_pair[0].url, "/chat", make_token(user))
    await js.connect("l", gateway_pair[1].url, "/live-updates", make_token(user))

    status, answer = await call(http, routers[1], "GET", path)
    assert status == 200
    listed = {(c["gateway"], tuple(c["namespaces"])) for c in answer["connections"]}
    assert listed == {(gateway_pair[0].env["SB_INSTANCE_ID"], ("/chat",)),
                      (gateway_pair[1].env["SB_INSTANCE_ID"], ("/live-updates",))}
    assert all(isinstance(c["id"], str) and isinstance(c["connected_at"], float)
               for c in answer["connections"])

    await js.close("c")

    async def one_left() -> bool:
        _, answer = await call(http, routers[0], "GET", path)
        return len(answer["connections"]) == 1

    await until(one_left)


async def test_user_ids_travel_url_encoded(
    js: JsClients, http: aiohttp.ClientSession, gateway_pair: list[Service],
    routers: list[Service]
) -> None:
    user = unique("odd/user name.*>")
    await js.connect("c", gateway_pair[0].url, "/chat", make_token(user))
    status, answer = await call(http, routers[0], "GET",
                                f"/api/v1/users/{quote(user, safe='')}/connections")
    assert (status, len(answer["connections"])) == (200, 1)


# --- kick -----------------------------------------------------------------------------------------

async def test_kick_disconnects_every_connection_of_the_user_for_good(
    js: JsClients, http: aiohttp.ClientSession, gateway_pair: list[Service],
    routers: list[Service]
) -> None:
    user, other = unique("kicked"), unique("stays")
    await js.connect("k0", gateway_pair[0].url, "/chat", make_token(user))
    await js.connect("k1", gateway_pair[1].url, "/chat", make_token(user))
    await js.connect("s", gateway_pair[0].url, "/chat", make_token(other))
    path = f"/api/v1/users/{user}/connections"

    status, answer = await call(http, routers[0], "DELETE", path, {"reason": "spam"})
    assert status == 200
    assert answer == {"ok": True, "kicked": 2, "unreached": 0, "reason": "spam"}
    for name in ("k0", "k1"):
        gone = await js.expect(name, {"disconnect"})
        assert gone["reason"] == "io server disconnect"  # terminal: no reconnect

    async def none_left() -> bool:
        _, answer = await call(http, routers[1], "GET", path)
        return answer["connections"] == []

    await until(none_left)
    assert [m for m in js.pending("s") if m["type"] == "disconnect"] == []
    status, answer = await call(http, routers[1], "DELETE", path)
    assert (status, answer["kicked"]) == (200, 0)


# --- the backend helper over NATS ---------------------------------------------------------------

async def test_backend_helper_over_nats(
    js: JsClients, nc: Client, gateway_pair: list[Service], routers: list[Service]
) -> None:
    backend = Backend(nc)
    user, room = unique("helped"), unique("room:helper")
    await js.connect("a", gateway_pair[0].url, "/chat", make_token(user))
    await js.call("a", "room:join", {"room": room})

    published = await backend.publish("/chat", room, "news", {"x": 1}, message_id="once")
    assert published["ok"] is True and published["status"] == 200
    again = await backend.publish("/chat", room, "news", {"x": 1}, message_id="once")
    assert (again["seq"], again["duplicate"]) == (published["seq"], True)
    payload, _ = await js.expect_event("a", "news")
    assert payload == {"seq": published["seq"], "prev": 0, "x": 1}

    sent = await backend.send(user, "/chat", "note", {"y": 2})
    assert (sent["connections"], sent["offline"]) == (1, False)
    assert (await js.expect_event("a", "note"))[0]["y"] == 2

    listed = await backend.connections(user)
    assert [c["gateway"] for c in listed["connections"]] == \
        [gateway_pair[0].env["SB_INSTANCE_ID"]]

    with pytest.raises(BackendError) as caught:
        await backend.publish("/nope", room, "news", {})
    assert (caught.value.code, caught.value.status) == ("bad_request", 400)

    kicked = await backend.kick(user, reason="helper")
    assert (kicked["kicked"], kicked["reason"]) == (1, "helper")
    assert (await js.expect("a", {"disconnect"}))["reason"] == "io server disconnect"
    assert js.pending("a") == []  # the duplicate publish was delivered once


async def test_a_killed_router_replica_loses_no_retried_request(
    js: JsClients, nc: Client, nats_server: NatsServer, service_logs: Path,
    gateway_pair: list[Service], routers: list[Service]
) -> None:
    room = unique("room:failover")
    await js.connect("a", gateway_pair[1].url, "/chat", make_token("failover"))
    await js.call("a", "room:join", {"room": room})
    backend = Backend(nc, timeout=1 * UNIT)
    victim = routers[0]
    assert victim.proc is not None
    # Stopped first, so the requests NATS hands it are certainly in flight when it dies.
    os.kill(victim.proc.pid, signal.SIGSTOP)
    try:
        requests = [asyncio.create_task(backend.publish("/chat", room, "tick", {"n": n}))
                    for n in range(40)]
        await asyncio.sleep(0.3 * UNIT)
        victim.kill()
        answers = await asyncio.gather(*requests)
    finally:
        victim.kill()
        victim.stop()
        routers[0] = router(nats_server.url).start(service_logs)  # the fixture stops it

    assert all(a["ok"] is True for a in answers)
    assert backend.retries >= 1
    seen = []
    for _ in range(40):
        payload, _ = await js.expect_event("a", "tick")
        seen.append(payload["n"])
    assert sorted(seen) == list(range(40))
    await backend.publish("/chat", room, "marker", {})
    await js.expect_event("a", "marker")
    assert events_named(js, "a", "tick") == []


# --- reaping ------------------------------------------------------------------------------------

async def test_a_killed_gateways_connections_vanish_and_are_reaped(
    js: JsClients, nc: Client, http: aiohttp.ClientSession,
    start_gateway: Callable[..., Service], routers: list[Service]
) -> None:
    doomed = start_gateway()
    user = unique("reaped")
    await js.connect("a", doomed.url, "/chat", make_token(user))
    registry = await nc.jetstream().key_value("sb-registry")
    key = f"u.{encode_token(user)}"

    async def entry_gateways() -> set[str]:
        entry = UserEntry.decode((await registry.get(key)).value)
        return {info.gateway for info in entry.connections.values()}

    assert await entry_gateways() == {doomed.env["SB_INSTANCE_ID"]}
    doomed.kill()

    async def unlisted() -> bool:
        _, answer = await call(http, routers[0], "GET", f"/api/v1/users/{user}/connections")
        return answer["connections"] == []

    async def reaped() -> bool:
        return await entry_gateways() == set()

    await until(unlisted)
    await until(reaped)


# --- room presence ------------------------------------------------------------------------------
# Presence replicas, gateways and routers that work together share a subject prefix; any
# presence replica on a prefix answers its queries, so these tests use prefixes of their own.

PRESENCE_TIMINGS = {"SB_PRESENCE_GRACE_S": "1", "SB_GATEWAY_TTL_S": "1",
                    "SB_PRESENCE_REPLICA_TTL_S": "1"}


def fresh_prefix() -> str:
    return f"rp{uuid.uuid4().hex[:10]}"


@dataclass
class PresenceStack:
    prefix: str
    presence: Service
    gateway: Service
    router: Service


@pytest.fixture(scope="module")
def presence_stack(nats_server: NatsServer, service_logs: Path) -> Iterator[PresenceStack]:
    """A presence replica, a gateway and a router on one prefix, stopped by PID whatever
    happens."""
    env = {"SB_SUBJECT_PREFIX": fresh_prefix(), **PRESENCE_TIMINGS}
    started: list[Service] = []
    try:
        replica = processes.presence(nats_server.url, **env)
        started.append(replica)
        replica.start(service_logs)
        gateway = processes.gateway(nats_server.url, SECRET, **env)
        started.append(gateway)
        gateway.start(service_logs)
        api = router(nats_server.url, **env)
        started.append(api)
        api.start(service_logs)
        yield PresenceStack(env["SB_SUBJECT_PREFIX"], replica, gateway, api)
    finally:
        for service in reversed(started):
            service.stop()


def presence_path(room: str, namespace: str | None = None) -> str:
    query = "" if namespace is None else f"?namespace={quote(namespace, safe='')}"
    return f"/api/v1/rooms/{quote(room, safe=':@')}/presence{query}"


async def test_presence_lists_the_users_in_a_room(
    js: JsClients, nc: Client, http: aiohttp.ClientSession, presence_stack: PresenceStack
) -> None:
    stack = presence_stack
    room = unique("room:present")
    alice, bob = unique("alice"), unique("bob")
    for name, sub in (("a", alice), ("b", bob)):
        assert (await js.connect(name, stack.gateway.url, "/chat", make_token(sub)))["type"] \
            == "connect"
        assert (await js.call(name, "room:join", {"room": room}))["ok"] is True

    async def members(expected: list[str]) -> bool:
        status, answer = await call(http, stack.router, "GET", presence_path(room))
        assert status == 200, answer
        return bool(answer["users"] == expected)

    both = sorted([alice, bob])
    await until(lambda: members(both))
    status, answer = await call(http, stack.router, "GET", presence_path(room, "/chat"))
    assert (status, answer) == (200, {"ok": True, "room": room, "namespace": "/chat",
                                      "users": both, "count": 2, "truncated": False})

    # the same operation over the router's NATS API
    reply = await nc.request(Subjects(stack.prefix).api("presence"),
                             orjson.dumps({"room": room, "namespace": "/chat"}),
                             timeout=5 * UNIT)
    assert orjson.loads(reply.data) == {**answer, "status": 200}

    # a socket that leaves is dropped once the grace (1 s here) is over
    await js.close("b")
    await until(lambda: members([alice]))


async def test_presence_of_an_empty_room_is_count_zero(
    http: aiohttp.ClientSession, presence_stack: PresenceStack
) -> None:
    room = unique("room:nobody")
    for namespace in (None, "/chat"):
        status, answer = await call(http, presence_stack.router, "GET",
                                    presence_path(room, namespace))
        assert (status, answer) == (200, {"ok": True, "room": room,
                                          "namespace": namespace or "/chat", "users": [],
                                          "count": 0, "truncated": False})
    status, answer = await call(http, presence_stack.router, "GET",
                                presence_path(room, "/notifications"))  # no presence there
    assert (status, answer["error"]["code"]) == (400, "bad_request")


@pytest.mark.parametrize("path", [
    "/api/v1/rooms/a%20b/presence", "/api/v1/rooms/x.%3E/presence",
    "/api/v1/rooms/" + "r" * 129 + "/presence", "/api/v1/rooms/room:a/presence?namespace=chat",
    "/api/v1/rooms/room:a/presence?namespace=",
])
async def test_presence_bad_room_or_namespace_is_400(
    http: aiohttp.ClientSession, presence_stack: PresenceStack, path: str
) -> None:
    status, answer = await call(http, presence_stack.router, "GET", path)
    assert (status, answer["ok"], answer["error"]["code"]) == (400, False, "bad_request")


async def test_presence_bad_input_over_nats_is_400(
    nc: Client, presence_stack: PresenceStack
) -> None:
    subject = Subjects(presence_stack.prefix).api("presence")
    for body in ({"room": "x.>"}, {"room": "room:a", "namespace": ["/chat"]}, {}):
        reply = orjson.loads((await nc.request(subject, orjson.dumps(body),
                                               timeout=5 * UNIT)).data)
        assert (reply["status"], reply["error"]["code"]) == (400, "bad_request"), body


@pytest.mark.parametrize("key", [None, "wrong-key"])
async def test_presence_needs_the_api_key(
    http: aiohttp.ClientSession, presence_stack: PresenceStack, key: str | None
) -> None:
    status, answer = await call(http, presence_stack.router, "GET", presence_path("room:a"),
                                key=key)
    assert (status, answer["error"]["code"]) == (401, "unauthorized")


async def test_presence_without_a_replica_is_503(
    nc: Client, http: aiohttp.ClientSession, nats_server: NatsServer, service_logs: Path
) -> None:
    prefix = fresh_prefix()  # no presence replica ever runs on it
    lonely = router(nats_server.url, SB_SUBJECT_PREFIX=prefix, **PRESENCE_TIMINGS)
    try:
        lonely.start(service_logs)
        status, answer = await call(http, lonely, "GET", presence_path("room:a"))
        assert (status, answer["ok"], answer["error"]["code"]) == (503, False, "unavailable")
        assert "presence" in answer["error"]["message"]
        reply = await nc.request(Subjects(prefix).api("presence"),
                                 orjson.dumps({"room": "room:a"}), timeout=5 * UNIT)
        assert orjson.loads(reply.data)["status"] == 503
        # a bad room is still refused before presence is asked
        status, answer = await call(http, lonely, "GET", presence_path("a b"))
        assert status == 400
    finally:
        lonely.stop()
