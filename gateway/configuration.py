"""What the gateway builds from its settings: the handshake policy, the session core's
configuration, the namespaces' chains, the token verifier, TLS, the recovery lease and the
room log's settings."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path

from gateway import namespaces
from gateway.handshake import HandshakePolicy
from gateway.limits import Limits
from gateway.middleware import Namespace
from gateway.session import SessionConfig
from shared.config import ConfigError, GatewaySettings
from shared.jwtauth import TokenVerifier
from shared.room_log.streams import LogSettings


def handshake_policy(settings: GatewaySettings, verifier: TokenVerifier) -> HandshakePolicy:
    return HandshakePolicy(
        verifier=verifier,
        allowed_origins=frozenset(settings.allowed_origins),
        require_tls=settings.env == "production" and not settings.tls_cert,
        trusted_proxies=settings.trusted_proxies,
        transports=frozenset(settings.transports),
    )


def session_config(settings: GatewaySettings) -> SessionConfig:
    return SessionConfig(
        ping_interval_ms=settings.ping_interval_ms,
        ping_timeout_ms=settings.ping_timeout_ms,
        ping_misses=settings.ping_misses,
        max_payload=settings.max_payload,
        connect_timeout_ms=settings.connect_timeout_ms,
        limits=Limits(
            chat_rate=settings.chat_rate,
            chat_burst=settings.chat_burst,
            request_rate=settings.request_rate,
            request_burst=settings.request_burst,
            attachment_max_bytes=settings.attachment_max_bytes,
        ),
        gateway=settings.instance_id,
    )


def verifier_for(settings: GatewaySettings) -> TokenVerifier:
    return TokenVerifier(
        algorithms=settings.jwt_algorithms,
        secret=settings.jwt_secret,
        public_key=settings.jwt_public_key,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        leeway_s=settings.jwt_leeway_s,
    )


def tls_context(settings: GatewaySettings) -> ssl.SSLContext | None:
    if not settings.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    return context


def lease_seconds(settings: GatewaySettings) -> float:
    """Recovery records are re-put four times per recovery window, so the bucket's TTL
    (window plus one lease) keeps a live record and lets a dead gateway's records lapse."""
    return max(1.0, settings.recovery_window_s / 4)


def settle_seconds(settings: GatewaySettings) -> float:
    """How long an owner waits for a session to settle before handing it over: past the
    longest hook timeout and a publish's ack timeout, so whatever is in flight has ended."""
    hooks = [spec.hook_timeout_ms / 1000 for spec in settings.namespaces.values()
             if spec.hooks or spec.auth == "hook"]
    return max([2.0, *hooks]) + 1.0


def log_settings(settings: GatewaySettings) -> LogSettings:
    return LogSettings(
        durable=settings.namespaces.durable,
        replicas=settings.stream_replicas,
        duplicate_window_s=settings.dedup_window_s,
        max_age_s=settings.log_max_age_s,
        max_per_room=settings.log_max_per_room,
        inbox_max=settings.inbox_max,
        inbox_max_age_s=settings.inbox_max_age_s,
        lifecycle=any(spec.hooks for spec in settings.namespaces.values()),
    )


def namespace_chains(settings: GatewaySettings) -> Mapping[str, Namespace]:
    """Every namespace's middleware chain, with the operator's event schemas if any."""
    try:
        return namespaces.build(
            Path(settings.events_dir) if settings.events_dir else None, settings.namespaces)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"SB_EVENTS_DIR={settings.events_dir!r}: {exc}") from None
