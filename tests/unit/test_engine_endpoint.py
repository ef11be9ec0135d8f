"""Routing of ``/socket.io/`` requests by transport and session, with a stand-in for the
connection (the endpoint only starts it and hands it its channel)."""

from __future__ import annotations

import json
from typing import Any, cast

from prometheus_client import CollectorRegistry

from gateway.channel import Channel
from gateway.connection import Connection
from gateway.engine_endpoint import EngineEndpoint
from gateway.handshake import HandshakePolicy
from gateway.http import Headers, Request, Response
from gateway.polling import PollingChannel
from shared.jwtauth import Identity, TokenVerifier
from shared.metrics import GatewayMetrics
from tests.support.tokens import SECRET

POLL = "/socket.io/?EIO=4&transport=polling"


class Started:
    def __init__(self) -> None:
        self.opened: list[tuple[Channel, str, tuple[str, ...]]] = []

    def __call__(self, channel: Channel, identity: Identity | None, sid: str,
                 upgrades: tuple[str, ...], headers: Headers) -> Connection:
        self.opened.append((channel, sid, upgrades))
        return cast(Connection, _Inert())


class _Inert:
    def receive(self, message: str | bytes) -> None: ...

    def lost(self) -> None: ...


def endpoint(transports: frozenset[str] = frozenset({"polling", "websocket"})
             ) -> tuple[EngineEndpoint, Started]:
    started = Started()
    policy = HandshakePolicy(TokenVerifier(("HS256",), secret=SECRET), transports=transports)
    ids = iter(f"sid-{n}" for n in range(100))
    return EngineEndpoint(policy, 1000, GatewayMetrics(CollectorRegistry()), started,
                          lambda: next(ids), lambda: False), started


def request(method: str, target: str, body: bytes = b"", **headers: str) -> Request:
    return Request(method, target, Headers(list(headers.items())), body)


def error_code(result: Any) -> int:
    assert isinstance(result, Response)
    return int(json.loads(result.body)["code"])


async def test_a_polling_handshake_starts_a_connection_that_may_upgrade() -> None:
    ep, started = endpoint()
    result = ep(request("GET", POLL))
    assert not isinstance(result, Response)  # the open packet comes with the first flush
    (channel, sid, upgrades), = started.opened
    assert isinstance(channel, PollingChannel) and ep.polling[sid] is channel
    assert upgrades == ("websocket",)


async def test_without_websocket_a_polling_session_offers_no_upgrade() -> None:
    ep, started = endpoint(frozenset({"polling"}))
    ep(request("GET", POLL))
    assert started.opened[0][2] == ()


async def test_requests_of_a_session_go_to_its_channel() -> None:
    ep, _ = endpoint()
    ep(request("GET", POLL))
    result = ep(request("POST", POLL + "&sid=sid-0", b"3"))
    assert isinstance(result, Response) and result.body == b"ok"


async def test_protocol_errors() -> None:
    ep, _ = endpoint()
    assert error_code(ep(request("POST", POLL, b"40"))) == 2
    assert error_code(ep(request("GET", POLL + "&sid=unknown"))) == 1
    assert error_code(ep(request("GET", "/socket.io/?EIO=4&transport=x"))) == 0
    assert error_code(ep(request("PUT", POLL + "&sid=sid-0"))) == 1
    ep(request("GET", POLL))
    assert error_code(ep(request("PUT", POLL + "&sid=sid-0"))) == 3


async def test_an_upgrade_for_no_polling_session_is_refused() -> None:
    ep, _ = endpoint()
    assert error_code(ep(request("GET", "/socket.io/?EIO=4&transport=websocket&sid=zz"))) == 1


async def test_a_preflight_is_answered_from_the_allow_list() -> None:
    ep, _ = endpoint()
    result = ep(request("OPTIONS", POLL, Origin="http://a.example"))
    assert isinstance(result, Response) and result.status == 204
    assert ("Access-Control-Allow-Origin", "*") in result.headers


async def test_an_upgraded_sessions_channel_goes_when_its_connection_ends() -> None:
    ep, started = endpoint()
    ep(request("GET", POLL))
    ep(request("GET", POLL))
    upgraded, polling = (channel for channel, _, _ in started.opened)
    assert isinstance(upgraded, PollingChannel) and isinstance(polling, PollingChannel)
    upgraded.upgraded = True
    ep.finished("sid-0")
    ep.finished("sid-1")
    assert list(ep.polling) == ["sid-1"]
