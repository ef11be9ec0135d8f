"""The HTTP shell in process (aiohttp's test server on loopback, fake effects): bearer key,
path users, JSON error shape for the framework's own refusals, Retry-After."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from router.api import Api
from router.http_api import add_routes, authorized
from router.metrics import RouterMetrics
from shared import httpservice
from shared.ratelimit import TokenBucket
from tests.unit.test_router_operations import Fakes

KEY = "router-test-api-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
PUBLISH = {"namespace": "/chat", "room": "room:a", "event": "e", "data": {}}


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fakes() -> Fakes:
    return Fakes()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
async def client(fakes: Fakes, registry: CollectorRegistry) -> AsyncIterator[TestClient]:
    api = Api(fakes.operations(), TokenBucket.full(10, 3, 0.0),
              RouterMetrics(registry))
    app = httpservice.health_app(registry, lambda: True)
    add_routes(app, api, KEY, Clock())
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


@pytest.mark.parametrize(("header", "expected"), [
    (f"Bearer {KEY}", True), (f"bearer {KEY}", True), (f"Bearer  {KEY} ", True),
    (None, False), ("", False), (KEY, False), (f"Basic {KEY}", False),
    ("Bearer wrong", False), (f"Bearer {KEY}x", False), ("Bearer ", False),
])
def test_authorized(header: str | None, expected: bool) -> None:
    assert authorized(header, KEY) is expected


def test_an_empty_key_authorizes_nothing() -> None:
    assert not authorized("Bearer ", "")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}])
async def test_without_the_key_every_endpoint_is_401(client: TestClient,
                                                     headers: dict[str, str],
                                                     fakes: Fakes) -> None:
    for method, path in [("POST", "/api/v1/publish"), ("POST", "/api/v1/users/u/send"),
                         ("GET", "/api/v1/users/u/connections"),
                         ("DELETE", "/api/v1/users/u/connections"),
                         ("GET", "/api/v1/rooms/room:a/presence")]:
        answer = await client.request(method, path, json=PUBLISH, headers=headers)
        assert answer.status == 401
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await answer.json())["error"]["code"] == "unauthorized"
    assert fakes.published == [] and fakes.kicks == [] and fakes.presence_queries == []


async def test_publish(client: TestClient, fakes: Fakes) -> None:
    answer = await client.post("/api/v1/publish", json=PUBLISH, headers=AUTH)
    assert answer.status == 200
    assert answer.content_type == "application/json"
    assert await answer.json() == {"ok": True, "seq": 1, "duplicate": False}


async def test_path_users_are_url_decoded(client: TestClient, fakes: Fakes) -> None:
    body = {"namespace": "/chat", "event": "e", "data": {}}
    answer = await client.post("/api/v1/users/a%2Fb%20%C3%A9/send", json=body, headers=AUTH)
    assert answer.status == 200
    assert fakes.published[0][1] == "user:a/b é"


async def test_bad_json_and_empty_bodies_are_400(client: TestClient) -> None:
    for data in (b"{nope", b"", b"[]"):
        answer = await client.post("/api/v1/publish", data=data, headers=AUTH)
        assert answer.status == 400
        assert (await answer.json())["error"]["code"] == "bad_request"


async def test_kick_takes_an_optional_body(client: TestClient, fakes: Fakes) -> None:
    answer = await client.delete("/api/v1/users/u/connections", headers=AUTH)
    assert (await answer.json())["kicked"] == 2  # one per gateway (the fake)
    answer = await client.delete("/api/v1/users/u/connections", json={"reason": "spam"},
                                 headers=AUTH)
    assert (await answer.json())["reason"] == "spam"


async def test_connections(client: TestClient) -> None:
    answer = await client.get("/api/v1/users/u/connections", headers=AUTH)
    body = await answer.json()
    assert [c["id"] for c in body["connections"]] == ["c1", "c2", "c3"]


async def test_unknown_paths_and_methods_answer_json(client: TestClient) -> None:
    answer = await client.get("/api/v1/nope", headers=AUTH)
    assert answer.status == 404
    assert (await answer.json())["error"]["code"] == "not_found"
    answer = await client.put("/api/v1/publish", headers=AUTH)
    assert answer.status == 405
    assert (await answer.json())["ok"] is False


async def test_a_body_over_the_framework_limit_is_413(client: TestClient) -> None:
    answer = await client.post("/api/v1/publish", data=io.BytesIO(b" " * (1024 * 1024 + 1)),
                               headers=AUTH)
    assert answer.status == 413
    assert (await answer.json())["error"]["code"] == "too_large"


async def test_over_the_rate_limit_is_429_with_retry_after(client: TestClient) -> None:
    statuses = []
    for _ in range(4):
        answer = await client.post("/api/v1/publish", json=PUBLISH, headers=AUTH)
        statuses.append(answer.status)
    assert statuses == [200, 200, 200, 429]
    assert answer.headers["Retry-After"] == "1"
    assert (await answer.json())["error"]["retry_after_ms"] == 100


async def test_health_routes_stay_and_metrics_count_requests(
        client: TestClient, registry: CollectorRegistry) -> None:
    assert (await client.get("/healthz")).status == 200
    await client.post("/api/v1/publish", json=PUBLISH, headers=AUTH)
    await client.post("/api/v1/publish", json=PUBLISH)
    text = await (await client.get("/metrics")).text()
    assert ('switchboard_router_api_requests_total{operation="publish",status="200",'
            'transport="http"} 1.0') in text
    assert ('switchboard_router_api_requests_total{operation="publish",status="401",'
            'transport="http"} 1.0') in text


async def test_room_presence(client: TestClient, fakes: Fakes) -> None:
    answer = await client.get("/api/v1/rooms/room:lobby/presence", headers=AUTH)
    assert answer.status == 200
    assert answer.content_type == "application/json"
    assert await answer.json() == {"ok": True, "room": "room:lobby", "namespace": "/chat",
                                   "users": ["alice", "bob"], "count": 2, "truncated": False}
    assert fakes.presence_queries == [("/chat", "room:lobby")]


async def test_room_presence_reads_the_namespace_from_the_query(client: TestClient,
                                                                fakes: Fakes) -> None:
    for query in ("?namespace=/notifications", "?namespace=%2Fnotifications"):
        answer = await client.get(f"/api/v1/rooms/room%3Ax/presence{query}", headers=AUTH)
        assert (await answer.json())["namespace"] == "/notifications"
    assert fakes.presence_queries == [("/notifications", "room:x")] * 2


async def test_room_presence_ignores_a_body(client: TestClient, fakes: Fakes) -> None:
    answer = await client.get("/api/v1/rooms/room:a/presence", data=b"{nope", headers=AUTH)
    assert answer.status == 200


@pytest.mark.parametrize("path", [
    "/api/v1/rooms/a%20b/presence", "/api/v1/rooms/x.%3E/presence",
    "/api/v1/rooms/a%2Fb/presence", "/api/v1/rooms/" + "r" * 129 + "/presence",
    "/api/v1/rooms/room:a/presence?namespace=", "/api/v1/rooms/room:a/presence?namespace=chat",
    "/api/v1/rooms/room:a/presence?namespace=/nope",
])
async def test_room_presence_bad_input_is_400(client: TestClient, fakes: Fakes,
                                              path: str) -> None:
    answer = await client.get(path, headers=AUTH)
    assert answer.status == 400
    assert (await answer.json())["error"]["code"] == "bad_request"
    assert fakes.presence_queries == []


async def test_room_presence_without_a_replica_is_503_json(client: TestClient,
                                                           fakes: Fakes,
                                                           registry: CollectorRegistry) -> None:
    fakes.presence_down = True
    answer = await client.get("/api/v1/rooms/room:a/presence", headers=AUTH)
    assert answer.status == 503
    assert (await answer.json())["error"]["code"] == "unavailable"
    text = await (await client.get("/metrics")).text()
    assert ('switchboard_router_api_requests_total{operation="presence",status="503",'
            'transport="http"} 1.0') in text


async def test_room_presence_wrong_method_is_405_json(client: TestClient) -> None:
    answer = await client.post("/api/v1/rooms/room:a/presence", json={}, headers=AUTH)
    assert answer.status == 405
    assert (await answer.json())["ok"] is False
