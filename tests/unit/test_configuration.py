"""What the gateway builds from its settings."""

from __future__ import annotations

import pytest

from gateway.configuration import handshake_policy, lease_seconds, log_settings, verifier_for
from shared.config import GatewaySettings, load
from shared.namespaces_file import parse_namespaces


def settings(**env: str) -> GatewaySettings:
    return load(GatewaySettings, {"SB_JWT_SECRET": "s" * 32, **env})


def test_the_policy_follows_the_transports_and_origins() -> None:
    config = settings(SB_TRANSPORTS="websocket", SB_ALLOWED_ORIGINS="https://a.example")
    policy = handshake_policy(config, verifier_for(config))
    assert policy.transports == frozenset({"websocket"})
    assert policy.allowed_origins == frozenset({"https://a.example"})
    assert handshake_policy(settings(), verifier_for(settings())).transports == frozenset(
        {"polling", "websocket"})


@pytest.mark.parametrize("window, lease", [(120.0, 30.0), (2.0, 1.0)])
def test_the_lease_is_a_quarter_of_the_window_at_least_a_second(window: float,
                                                               lease: float) -> None:
    assert lease_seconds(settings(SB_RECOVERY_WINDOW_S=str(window))) == lease


def test_the_lifecycle_stream_is_kept_only_with_a_hooked_namespace() -> None:
    assert not log_settings(settings()).lifecycle
    hooked = parse_namespaces('[namespaces."/orders"]\nhooks = true\n')
    config = settings()
    object.__setattr__(config, "namespaces", hooked)
    assert log_settings(config).lifecycle
