"""The upgrade decision: one pure function from (path, headers, policy) to Accept or Reject."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from ipaddress import ip_network

import jwt
import pytest
from websockets.datastructures import Headers

from gateway.handshake import Accept, HandshakePolicy, Reject, Resume, decide
from shared.jwtauth import TokenVerifier
from tests.support.tokens import SECRET, make_token
from tests.unit.forged_tokens import claims, unsigned_token

POLICY = HandshakePolicy(TokenVerifier(("HS256",), secret=SECRET))
ORIGINS = replace(POLICY, allowed_origins=frozenset({"https://app.example"}))
PRODUCTION = replace(POLICY, require_tls=True)
BEHIND_PROXY = replace(POLICY, require_tls=True,
                       trusted_proxies=(ip_network("10.0.0.0/8"), ip_network("::1/128")))
PROXY = "10.1.2.3"
WS = "/socket.io/?EIO=4&transport=websocket"

BAD_TOKENS = {
    "garbage": "garbage",
    "empty": "",
    "expired": make_token("alice", ttl=-3600),
    "alg none": unsigned_token(claims()),
    "alg None": unsigned_token(claims(), alg="None"),
    "wrong secret": make_token("alice", secret="some-other-secret-of-32-bytes-or-more"),
    "no sub": jwt.encode({"exp": 4_000_000_000}, SECRET, algorithm="HS256"),
}


def status(result: Accept | Resume | Reject) -> int:
    return result.status if isinstance(result, Reject) else 101


def identity_sub(result: Accept | Resume | Reject) -> str | None:
    assert isinstance(result, Accept), result
    return None if result.identity is None else result.identity.sub


def test_no_token_is_accepted_without_identity() -> None:
    assert decide(WS, {}, POLICY) == Accept(None)


def test_python_socketio_query_order_is_accepted() -> None:
    assert decide("/socket.io/?transport=websocket&EIO=4&t=1732528800.5", {}, POLICY) == Accept(
        None
    )


def test_good_token_in_query_gives_the_identity() -> None:
    assert identity_sub(decide(f"{WS}&token={make_token('alice')}", {}, POLICY)) == "alice"


def test_good_bearer_token_gives_the_identity() -> None:
    headers = {"authorization": f"Bearer {make_token('bob')}"}

    assert identity_sub(decide(WS, headers, POLICY)) == "bob"


def test_bearer_scheme_is_case_insensitive() -> None:
    headers = {"Authorization": f"bearer {make_token('bob')}"}

    assert identity_sub(decide(WS, headers, POLICY)) == "bob"


def test_query_token_wins_over_the_header() -> None:
    headers = {"authorization": f"Bearer {make_token('bob')}"}

    assert identity_sub(decide(f"{WS}&token={make_token('alice')}", headers, POLICY)) == "alice"


@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
def test_bad_query_token_is_401(name: str) -> None:
    assert status(decide(f"{WS}&token={BAD_TOKENS[name]}", {}, POLICY)) == 401


@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
def test_bad_bearer_token_is_401(name: str) -> None:
    assert status(decide(WS, {"authorization": f"Bearer {BAD_TOKENS[name]}"}, POLICY)) == 401


@pytest.mark.parametrize("header", ["Basic YWxpY2U6cHc=", "Token abc", "Bearer", "bearer "])
def test_other_authorization_schemes_are_401(header: str) -> None:
    assert status(decide(WS, {"authorization": header}, POLICY)) == 401


def test_origin_outside_the_allow_list_is_403() -> None:
    assert status(decide(WS, {"origin": "https://evil.example"}, ORIGINS)) == 403
    good = f"{WS}&token={make_token('alice')}"
    assert status(decide(good, {"origin": "https://evil.example"}, ORIGINS)) == 403


def test_origin_in_the_allow_list_is_accepted() -> None:
    assert decide(WS, {"origin": "https://app.example"}, ORIGINS) == Accept(None)


def test_no_origin_is_accepted_with_an_allow_list() -> None:
    assert decide(WS, {}, ORIGINS) == Accept(None)


def test_any_origin_without_an_allow_list() -> None:
    assert decide(WS, {"origin": "https://anything.example"}, POLICY) == Accept(None)


def test_websockets_headers_are_read_case_insensitively() -> None:
    headers = Headers([("ORIGIN", "https://evil.example")])

    assert status(decide(WS, headers, ORIGINS)) == 403


@pytest.mark.parametrize(
    "query",
    [
        "EIO=3&transport=websocket",
        "EIO=abc&transport=websocket",
        "EIO=&transport=websocket",
        "transport=websocket",
        "EIO=4",
        "EIO=4&transport=",
        "EIO=4&transport=webtransport",
    ],
)
def test_bad_engineio_query_is_400(query: str) -> None:
    assert status(decide(f"/socket.io/?{query}", {}, POLICY)) == 400


def test_protocol_errors_come_before_token_checks() -> None:
    assert status(decide("/socket.io/?EIO=3&transport=websocket&token=bad", {}, POLICY)) == 400


@pytest.mark.parametrize(
    "path", ["/", "/socket.io", "/socket.io/x", "/engine.io/?EIO=4&transport=websocket",
             "/healthz", "//socket.io/"],
)
def test_other_paths_are_404(path: str) -> None:
    assert status(decide(path, {}, POLICY)) == 404


def test_production_without_tls_is_403() -> None:
    assert status(decide(WS, {}, PRODUCTION)) == 403


def test_production_ignores_forwarded_proto_unless_the_proxy_is_trusted() -> None:
    assert status(decide(WS, {"x-forwarded-proto": "https"}, PRODUCTION, PROXY)) == 403
    assert status(decide(WS, {"x-forwarded-proto": "https"}, BEHIND_PROXY, "192.0.2.9")) == 403
    assert status(decide(WS, {"x-forwarded-proto": "https"}, BEHIND_PROXY, "::1")) == 101
    assert status(decide(WS, {"x-forwarded-proto": "https"}, BEHIND_PROXY, "bogus")) == 403
    assert status(decide(WS, {"x-forwarded-proto": "https"}, BEHIND_PROXY, None)) == 403


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-forwarded-proto": "https"}, 101),
        ({"X-Forwarded-Proto": "HTTPS"}, 101),
        ({"x-forwarded-proto": "https, http"}, 101),
        ({"x-forwarded-proto": "http"}, 403),
        ({"x-forwarded-proto": "http, https"}, 403),
        ({}, 403),
    ],
)
def test_production_behind_a_trusted_proxy(headers: Mapping[str, str], expected: int) -> None:
    assert status(decide(WS, headers, BEHIND_PROXY, PROXY)) == expected


def test_production_still_checks_the_token() -> None:
    headers = {"x-forwarded-proto": "https"}

    assert status(decide(f"{WS}&token=garbage", headers, BEHIND_PROXY, PROXY)) == 401
    assert identity_sub(decide(f"{WS}&token={make_token('alice')}", headers, BEHIND_PROXY,
                               PROXY)) == "alice"


@pytest.mark.parametrize("name", ["Origin", "Authorization"])
def test_a_repeated_origin_or_authorization_is_400(name: str) -> None:
    headers = Headers([(name, "https://app.example"), (name.upper(), "Bearer x")])

    assert decide(WS, headers, ORIGINS) == Reject(400, f"repeated {name} header")


def test_a_draining_gateway_refuses_every_new_session_with_503() -> None:
    assert decide(f"{WS}&token={make_token('alice')}", {}, POLICY, draining=True) == Reject(
        503, "draining")
    assert decide("/socket.io/?EIO=4&transport=polling", {}, POLICY, draining=True) == Reject(
        503, "draining")


def test_polling_handshake_is_a_new_session_over_polling() -> None:
    verdict = decide(f"/socket.io/?EIO=4&transport=polling&token={make_token('ann')}", {},
                     POLICY)
    assert isinstance(verdict, Accept) and verdict.transport == "polling"
    assert identity_sub(verdict) == "ann"


@pytest.mark.parametrize("transport", ["polling", "websocket"])
def test_a_request_naming_a_sid_resumes_that_session(transport: str) -> None:
    query = f"/socket.io/?EIO=4&transport={transport}&sid=GneGqMuPmmDvxHssAAAA&token=bad"
    assert decide(query, {}, POLICY) == Resume("GneGqMuPmmDvxHssAAAA", transport)


def test_a_draining_gateway_still_serves_its_sessions_requests() -> None:
    query = "/socket.io/?EIO=4&transport=polling&sid=abc"
    assert decide(query, {}, POLICY, draining=True) == Resume("abc", "polling")
    assert status(decide("/socket.io/?EIO=4&transport=polling", {}, POLICY,
                         draining=True)) == 503


def test_origin_is_checked_on_every_request_of_a_session() -> None:
    query = "/socket.io/?EIO=4&transport=polling&sid=abc"
    assert status(decide(query, {"origin": "https://evil.example"}, ORIGINS)) == 403


def test_transports_can_be_limited() -> None:
    websocket_only = replace(POLICY, transports=frozenset({"websocket"}))
    assert status(decide("/socket.io/?EIO=4&transport=polling", {}, websocket_only)) == 400
    assert status(decide(WS, {}, websocket_only)) == 101
