"""The upgrade decision, in one pure function: accept (with an identity if a token came on the
upgrade) or reject with the HTTP status the contract names, before any upgrade happens."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Protocol, cast
from urllib.parse import parse_qs, urlsplit

from shared.jwtauth import Identity, TokenVerifier

SOCKET_IO_PATH = "/socket.io/"
SINGLE_HEADERS = ("Origin", "Authorization")  # two of them: which one would we check?


class MultiValued(Protocol):
    """Headers that keep repeated fields (``gateway.http.Headers``, websockets' ``Headers``)."""

    def get_all(self, name: str) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Accept:
    """A new Engine.IO session over ``transport``."""

    identity: Identity | None
    transport: str = "websocket"


@dataclass(frozen=True, slots=True)
class Resume:
    """A request of an existing session ``sid``: a poll, a POST, or the upgrade's WebSocket.
    Its identity was settled at the handshake; the Origin check applies to every request."""

    sid: str
    transport: str


@dataclass(frozen=True, slots=True)
class Reject:
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class HandshakePolicy:
    """``require_tls``: refuse upgrades that did not arrive over HTTPS, which on a plain port
    means: from a trusted proxy (``trusted_proxies``) that says ``X-Forwarded-Proto: https``."""

    verifier: TokenVerifier
    allowed_origins: frozenset[str] = frozenset()
    transports: frozenset[str] = frozenset({"polling", "websocket"})
    require_tls: bool = False
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()


def token_from(query: Mapping[str, list[str]], headers: Mapping[str, str]) -> str | None:
    """``?token=`` wins over ``Authorization: Bearer``; ``None`` when neither is present."""
    if "token" in query:
        return query["token"][0]
    auth = headers.get("authorization") or headers.get("Authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer":
            return value.strip()
        return ""
    return None


def decide(path: str, headers: Mapping[str, str], policy: HandshakePolicy,
           peer: str | None = None, *, draining: bool = False) -> Accept | Resume | Reject:
    """Map a request of the Engine.IO endpoint to Accept (a new session), Resume (one of an
    existing session) or Reject(400/401/403/404/503). ``draining``: the gateway is going
    away, so a new session must start elsewhere (its own sessions still get their requests
    until they are closed). The WebSocket handshake's own header checks (RFC 6455 4.2.1)
    follow in ``websocket.check_upgrade``."""
    if hasattr(headers, "get_all"):  # not isinstance: a runtime Protocol check costs ~30 µs
        for name in SINGLE_HEADERS:
            if len(cast(MultiValued, headers).get_all(name)) > 1:
                return Reject(400, f"repeated {name} header")
    parts = urlsplit(path)
    if parts.path != SOCKET_IO_PATH:
        return Reject(404, "Not Found")
    query = parse_qs(parts.query, keep_blank_values=True)
    if query.get("EIO", [""])[0] != "4":
        return Reject(400, "Unsupported protocol version")
    transport = query.get("transport", [""])[0]
    if transport not in policy.transports:
        return Reject(400, "Transport unknown")
    origin = headers.get("origin") or headers.get("Origin")
    if policy.allowed_origins and origin is not None and origin not in policy.allowed_origins:
        return Reject(403, "Origin not allowed")
    if policy.require_tls and not _behind_tls(headers, peer, policy.trusted_proxies):
        return Reject(403, "TLS required")
    if "sid" in query:
        return Resume(query["sid"][0], transport)
    if draining:
        return Reject(503, "draining")
    token = token_from(query, headers)
    if token is None:
        return Accept(None, transport)
    identity = policy.verifier.verify(token)
    if identity is None:
        return Reject(401, "Unauthorized")
    return Accept(identity, transport)


def _behind_tls(headers: Mapping[str, str], peer: str | None,
               trusted: tuple[IPv4Network | IPv6Network, ...]) -> bool:
    if peer is None or not trusted:
        return False
    try:
        address = ip_address(peer)
    except ValueError:
        return False
    if not any(address in network for network in trusted):
        return False
    proto = headers.get("x-forwarded-proto") or headers.get("X-Forwarded-Proto") or ""
    return proto.split(",")[0].strip().lower() == "https"
