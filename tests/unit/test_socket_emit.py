"""Emit to one socket by sid: the router's validation and answers, its HTTP door on a fake
gateway, and the gateway's parsing, lookup and frames (pure, with a recording outbox)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from gateway.actions import NamespaceSocket, SendBinary, SendText
from gateway.socket_emit import EmitRequest, emit_to, handle, parse_emit
from router.answers import Failure
from router.api import Api
from router.http_api import add_routes
from router.operations import Operations
from router.requests import parse
from router.socket_emit import EmitToSocket, emit_answer, emit_to_socket
from shared import httpservice
from shared.jwtauth import Identity
from shared.ratelimit import TokenBucket
from shared.sids import new_sid
from shared.subjects import Subjects
from tests.unit.test_router_operations import Fakes

KEY = "emit-test-api-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
SID = new_sid("gw-a")


# --- the router: validation ------------------------------------------------------------------


def test_an_emit_request_is_encoded_once_for_the_gateway() -> None:
    request = parse("emit", {"sid": SID, "event": "order:filled", "args": [{"id": 7}, 2]})
    assert isinstance(request, EmitToSocket) and request.sid == SID
    assert orjson.loads(request.body) == {"sid": SID, "event": "order:filled",
                                          "args": [{"id": 7}, 2]}


def test_args_default_to_none_given() -> None:
    request = parse("emit", {"sid": SID, "event": "ping"})
    assert isinstance(request, EmitToSocket)
    assert orjson.loads(request.body)["args"] == []


@pytest.mark.parametrize("change", [
    {"event": "connect"}, {"event": "disconnect"}, {"event": "newListener"},
    {"event": ""}, {"event": "e" * 129}, {"event": 3}, {"event": None},
    {"args": {"a": 1}}, {"args": "x"}, {"sid": ""}, {"sid": 5}, {"sid": "s" * 257},
])
def test_bad_fields_are_bad_request(change: dict[str, object]) -> None:
    request = parse("emit", {"sid": SID, "event": "e", "args": [], **change})
    assert isinstance(request, Failure) and request.status == 400


def test_args_over_the_limit_are_too_large() -> None:
    request = parse("emit", {"sid": SID, "event": "e", "args": ["x" * 600_000]})
    assert isinstance(request, Failure) and request.status == 413


# --- the router: answers ---------------------------------------------------------------------


@pytest.mark.parametrize(("reply", "status", "code"), [
    (b'{"ok":true,"delivered":1}', 200, None),
    (b'{"ok":false,"error":{"code":"not_found","message":"m"}}', 404, "not_found"),
    (b'{"ok":false,"error":{"code":"bad_request","message":"m"}}', 400, "bad_request"),
    (b'{"ok":false,"error":{"code":"internal","message":"m"}}', 503, "unavailable"),
    (b"not json", 503, "unavailable"), (b"[1]", 503, "unavailable"),
    (b'{"ok":true}', 503, "unavailable"), (None, 503, "unavailable"),
])
def test_the_gateways_answer_becomes_the_apis(reply: bytes | None, status: int,
                                              code: str | None) -> None:
    answer = emit_answer(reply)
    assert answer.status == status
    assert (answer.body.get("error") or {}).get("code") == code


class Gateways:
    """A fake emitter: what each gateway was asked, answered by ``reply``."""

    def __init__(self, reply: bytes | None = b'{"ok":true,"delivered":1}') -> None:
        self.reply = reply
        self.asked: list[tuple[str, bytes]] = []

    async def __call__(self, gateway: str, body: bytes) -> bytes | None:
        self.asked.append((gateway, body))
        return self.reply


async def test_the_emit_goes_to_the_gateway_the_sid_names() -> None:
    gateways = Gateways()
    answer = await emit_to_socket(EmitToSocket(new_sid("gw/b.c"), b"{}"), gateways)
    assert answer.status == 200 and answer.body == {"ok": True, "delivered": 1}
    assert gateways.asked == [("gw/b.c", b"{}")]


@pytest.mark.parametrize("sid", ["no-owner", "", "~", "a" * 22 + "~=zz", "x~gw"])
async def test_a_sid_that_names_no_gateway_is_not_found_without_asking(sid: str) -> None:
    gateways = Gateways()
    answer = await emit_to_socket(EmitToSocket(sid, b"{}"), gateways)
    assert answer.status == 404 and gateways.asked == []


def test_the_per_gateway_subject_sits_beside_the_kick() -> None:
    subjects = Subjects("sb")
    assert subjects.gateway_emit("gw.1") == "sb.gw.gw=2E1.emit"


# --- the router: the HTTP door -----------------------------------------------------------------


@pytest.fixture
async def client() -> AsyncIterator[tuple[TestClient, Gateways]]:
    gateways = Gateways()
    fakes = Fakes()
    operations = Operations(fakes.lookup, fakes, fakes.kick, fakes.presence, gateways)
    registry = CollectorRegistry()
    api = Api(operations, TokenBucket.full(100, 100, 0.0))
    app = httpservice.health_app(registry, lambda: True)
    add_routes(app, api, KEY, lambda: 0.0)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client, gateways


async def test_http_emit_takes_the_sid_from_the_path(
        client: tuple[TestClient, Gateways]) -> None:
    http, gateways = client
    response = await http.post(f"/api/v1/sockets/{SID}/emit", headers=AUTH,
                               json={"sid": "ignored", "event": "e", "args": [1]})
    assert response.status == 200 and await response.json() == {"ok": True, "delivered": 1}
    assert orjson.loads(gateways.asked[0][1])["sid"] == SID


async def test_http_emit_of_a_reserved_name_is_400_and_needs_the_key(
        client: tuple[TestClient, Gateways]) -> None:
    http, gateways = client
    response = await http.post(f"/api/v1/sockets/{SID}/emit", headers=AUTH,
                               json={"event": "connect"})
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "bad_request"
    response = await http.post(f"/api/v1/sockets/{SID}/emit", json={"event": "e"})
    assert response.status == 401 and gateways.asked == []


# --- the gateway ---------------------------------------------------------------------------


def socket(durable_recovering: bool = False) -> NamespaceSocket:
    nsp = "/chat" if durable_recovering else "/orders"
    return NamespaceSocket(nsp, SID, Identity("alice", None, (), 0.0),
                           pid="pid" if durable_recovering else None, durable=durable_recovering)


def test_the_gateway_parses_binary_arguments() -> None:
    request = parse_emit(orjson.dumps({"sid": SID, "event": "e",
                                       "args": [{"$bin": "AAE="}, {"a": 1}]}))
    assert request == EmitRequest(SID, "e", [b"\x00\x01", {"a": 1}])


@pytest.mark.parametrize("raw", [
    b"", b"nope", b"[]", b'{"event":"e"}', b'{"sid":"s","event":"connect"}',
    b'{"sid":"s","event":"e","args":{}}', b'{"sid":"s","event":"e","args":[{"$bin":"!"}]}',
])
def test_bad_requests_are_answered_never_raised(raw: bytes) -> None:
    answer = parse_emit(raw)
    assert isinstance(answer, dict) and answer["error"]["code"] == "bad_request"


def test_an_emit_is_one_event_frame_without_offset() -> None:
    frames, answer = emit_to(socket(), EmitRequest(SID, "e", [{"a": 1}, "tail"]))
    assert answer == {"ok": True, "delivered": 1}
    assert frames == [SendText('42/orders,["e",{"a":1},"tail"]')]


def test_binary_arguments_go_as_attachments() -> None:
    frames, _ = emit_to(socket(), EmitRequest(SID, "e", [b"\x01"]))
    assert isinstance(frames[0], SendText) and frames[0].text.startswith("451-/orders,")
    assert frames[1:] == [SendBinary(b"\x01")]


def test_a_recovering_socket_refuses_a_last_string_argument() -> None:
    frames, answer = emit_to(socket(True), EmitRequest(SID, "e", ["looks like an offset"]))
    assert frames == [] and answer["error"]["code"] == "bad_request"
    frames, answer = emit_to(socket(True), EmitRequest(SID, "e", [{"text": "fine"}]))
    assert answer["ok"] is True and frames == [SendText('42/chat,["e",{"text":"fine"}]')]


class Outbox:
    def __init__(self, accepts: bool = True) -> None:
        self.accepts = accepts
        self.frames: list[bytes] = []

    def push(self, frame: bytes) -> bool:
        self.frames.append(frame)
        return self.accepts


def test_handle_writes_to_the_socket_it_finds() -> None:
    outbox, found = Outbox(), socket()
    find: Any = lambda sid: (outbox, found) if sid == SID else None  # noqa: E731
    answer = handle(orjson.dumps({"sid": SID, "event": "e", "args": [1]}), find)
    assert answer == {"ok": True, "delivered": 1} and len(outbox.frames) == 1


@pytest.mark.parametrize("accepts", [True, False])
def test_handle_answers_not_found_for_no_socket_or_a_closing_one(accepts: bool) -> None:
    outbox = Outbox(accepts)
    find: Any = (lambda sid: None) if accepts else (lambda sid: (outbox, socket()))
    answer = handle(orjson.dumps({"sid": SID, "event": "e"}), find)
    assert answer["error"]["code"] == "not_found"
