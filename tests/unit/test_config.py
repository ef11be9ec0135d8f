"""Settings: the contract's defaults, errors that name the variable and the value, secrets
redacted, ``SB_CONFIG_FILE`` with variables winning over the file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shared.config import (
    ConfigError,
    GatewaySettings,
    RouterSettings,
    ServiceSettings,
    describe,
    load,
)
from tests.support.tokens import SECRET

BASE = {"SB_JWT_SECRET": SECRET}


def gateway(**env: str) -> GatewaySettings:
    return load(GatewaySettings, {**BASE, **env})


def config_error(**env: str) -> str:
    with pytest.raises(ConfigError) as caught:
        gateway(**env)
    return str(caught.value)


def test_gateway_defaults_are_the_contract() -> None:
    settings = gateway()

    assert (settings.ping_interval_ms, settings.ping_timeout_ms) == (25_000, 5_000)
    assert settings.ping_misses == 2
    assert settings.max_payload == 1_000_000
    assert settings.send_budget_bytes == 1_000_000
    assert (settings.chat_rate, settings.chat_burst) == (100, 100)
    assert (settings.request_rate, settings.request_burst) == (10, 20)
    assert settings.connect_timeout_ms == 45_000
    assert settings.jwt_algorithms == ("HS256",)
    assert settings.jwt_leeway_s == 10
    assert settings.allowed_origins == ()
    assert settings.env == "development"
    assert settings.trusted_proxies == ()
    assert settings.drain_window_s == 10.0
    assert settings.drain_rate == 2_000.0


def test_instance_id_defaults_to_something_unique_per_process() -> None:
    assert gateway().instance_id
    assert gateway(SB_INSTANCE_ID="gw-7").instance_id == "gw-7"


def test_values_are_parsed() -> None:
    settings = gateway(
        SB_PING_INTERVAL_MS="300", SB_ALLOWED_ORIGINS=" https://a.example , https://b.example,",
        SB_TRUSTED_PROXIES="10.0.0.0/8, ::1", SB_ENV="Production",
        SB_NATS_URL="nats://a:1,nats://b:2",
        SB_JWT_ALGORITHMS="HS256,HS512", SB_CHAT_RATE="2.5",
    )

    assert settings.ping_interval_ms == 300
    assert settings.allowed_origins == ("https://a.example", "https://b.example")
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.0/8", "::1/128"]
    assert settings.env == "production"
    assert settings.nats_url == ("nats://a:1", "nats://b:2")
    assert settings.jwt_algorithms == ("HS256", "HS512")
    assert settings.chat_rate == 2.5


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SB_PING_INTERVAL_MS", "abc"),
        ("SB_PING_INTERVAL_MS", "0"),
        ("SB_PING_TIMEOUT_MS", "-5"),
        ("SB_PING_MISSES", "two"),
        ("SB_MAX_PAYLOAD", "1e6"),
        ("SB_CONNECT_TIMEOUT_MS", ""),
        ("SB_SEND_BUDGET_BYTES", "1MB"),
        ("SB_CHAT_RATE", "fast"),
        ("SB_CHAT_BURST", "1.5"),
        ("SB_REQUEST_RATE", "ten"),
        ("SB_REQUEST_BURST", "0"),
        ("SB_PORT", "70000"),
        ("SB_PORT", "http"),
        ("SB_ENV", "prod"),
        ("SB_TRUSTED_PROXIES", "not-an-address"),
        ("SB_JWT_LEEWAY_S", "10s"),
        ("SB_ATTACHMENT_MAX_BYTES", "-1"),
        ("SB_FANOUT_BATCH", "many"),
    ],
)
def test_bad_value_names_the_variable_and_the_value(variable: str, value: str) -> None:
    message = config_error(**{variable: value})

    assert variable in message
    assert repr(value) in message


@pytest.mark.parametrize("algorithms", ["none", "NONE", "HS256,none", "HS256, None", "", " , "])
def test_jwt_algorithms_never_include_none(algorithms: str) -> None:
    assert "SB_JWT_ALGORITHMS" in config_error(SB_JWT_ALGORITHMS=algorithms)


def test_gateway_without_a_key_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load(GatewaySettings, {})

    assert "SB_JWT_SECRET" in str(caught.value)


def test_gateway_with_only_a_public_key_is_accepted() -> None:
    settings = load(GatewaySettings, {"SB_JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----..."})

    assert settings.jwt_secret == ""


def test_short_secret_is_refused_and_not_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        load(GatewaySettings, {"SB_JWT_SECRET": "hunter2"})

    assert "SB_JWT_SECRET" in str(caught.value)
    assert "hunter2" not in str(caught.value)


@dataclass(frozen=True, slots=True)
class _WithSecrets(ServiceSettings):
    """Settings whose secret-named fields have parsers that can fail."""

    api_secret: int = field(default=0, metadata={"env": "SB_API_SECRET", "parse": int, "doc": ""})
    api_key: int = field(default=0, metadata={"env": "SB_SIGNING_KEY", "parse": int, "doc": ""})
    token: int = field(default=0, metadata={"env": "SB_BOT_TOKEN", "parse": int, "doc": ""})


@pytest.mark.parametrize("variable", ["SB_API_SECRET", "SB_SIGNING_KEY", "SB_BOT_TOKEN"])
def test_secret_values_are_redacted_in_errors(variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(_WithSecrets, {variable: "s3cr3t-value"})

    assert str(caught.value).startswith(f"{variable}=<redacted>: ")


@pytest.mark.parametrize("variable", ["SB_API_SECRET", "SB_SIGNING_KEY", "SB_BOT_TOKEN"])
def test_secret_values_appear_nowhere_in_errors(variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(_WithSecrets, {variable: "s3cr3t-value"})

    assert "s3cr3t-value" not in str(caught.value)


def test_unknown_variables_are_ignored() -> None:
    assert gateway(SB_NOT_A_SETTING="x", PATH="/bin").ping_interval_ms == 25_000


def test_router_settings_do_not_need_a_jwt_secret() -> None:
    assert load(RouterSettings, {"SB_API_KEY": "k"}).api_key == "k"


def test_the_router_needs_an_api_key() -> None:
    with pytest.raises(ConfigError, match="SB_API_KEY"):
        load(RouterSettings, {})


def test_one_router_settings_class_holds_the_api_limits() -> None:
    settings = load(RouterSettings, {"SB_API_KEY": "k", "SB_API_RATE": "50"})

    assert (settings.api_rate, settings.api_burst) == (50.0, 2000)
    assert {"SB_API_KEY", "SB_API_RATE", "SB_API_BURST"} <= {
        variable for variable, _, _ in describe(RouterSettings)}
    with pytest.raises(ConfigError, match="SB_API_BURST"):
        load(RouterSettings, {"SB_API_KEY": "k", "SB_API_BURST": "0"})


def test_every_setting_is_documented() -> None:
    rows = describe(GatewaySettings)

    assert {variable for variable, _, _ in rows} >= {"SB_PING_INTERVAL_MS", "SB_JWT_SECRET"}
    for variable, _default, doc in rows:
        assert variable.startswith("SB_") and doc, variable
    assert ("SB_PING_INTERVAL_MS", "25000") in {(v, d) for v, d, _ in rows}


# --- SB_CONFIG_FILE ------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "switchboard.env"
    path.write_text(text)
    return str(path)


def test_config_file_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, f"""
# the gateway of the test cluster
SB_JWT_SECRET={SECRET}

SB_PING_INTERVAL_MS = 300
SB_ALLOWED_ORIGINS=https://a.example,https://b.example
""")

    settings = load(GatewaySettings, {"SB_CONFIG_FILE": path})

    assert settings.jwt_secret == SECRET
    assert settings.ping_interval_ms == 300
    assert settings.allowed_origins == ("https://a.example", "https://b.example")


def test_variables_override_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, f"SB_JWT_SECRET={SECRET}\nSB_PING_INTERVAL_MS=300\nSB_PORT=9000\n")

    settings = load(GatewaySettings, {"SB_CONFIG_FILE": path, "SB_PING_INTERVAL_MS": "400"})

    assert settings.ping_interval_ms == 400
    assert settings.port == 9000


def test_bad_value_in_the_file_names_the_variable_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, f"SB_JWT_SECRET={SECRET}\nSB_PING_TIMEOUT_MS=soon\n")

    with pytest.raises(ConfigError) as caught:
        load(GatewaySettings, {"SB_CONFIG_FILE": path})

    assert "SB_PING_TIMEOUT_MS" in str(caught.value) and "'soon'" in str(caught.value)


@pytest.mark.parametrize("line", ["PING_INTERVAL_MS=300", "just words", "=300"])
def test_malformed_file_line_names_the_file_and_line(tmp_path: Path, line: str) -> None:
    path = write(tmp_path, f"# comment\n{line}\n")

    with pytest.raises(ConfigError) as caught:
        load(GatewaySettings, {**BASE, "SB_CONFIG_FILE": path})

    assert f"{path}:2" in str(caught.value)


def test_malformed_secret_line_in_the_file_is_not_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, "SB_JWT_SECRET: a-real-secret-of-at-least-32-bytes!!\n")

    with pytest.raises(ConfigError) as caught:
        load(GatewaySettings, {"SB_CONFIG_FILE": path})

    assert "a-real-secret" not in str(caught.value)


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.env")

    with pytest.raises(ConfigError) as caught:
        load(GatewaySettings, {**BASE, "SB_CONFIG_FILE": missing})

    assert "SB_CONFIG_FILE" in str(caught.value) and missing in str(caught.value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [("SB_CHAT_RATE", "nan"), ("SB_CHAT_RATE", "-1"), ("SB_REQUEST_RATE", "nan"),
     ("SB_REQUEST_RATE", "-10")],
)
def test_rates_must_be_finite_and_positive(variable: str, value: str) -> None:
    message = config_error(**{variable: value})

    assert variable in message and repr(value) in message


def test_leeway_must_not_be_negative() -> None:
    assert "SB_JWT_LEEWAY_S" in config_error(SB_JWT_LEEWAY_S="-5")


def test_production_needs_tls_or_trusted_proxies() -> None:
    with pytest.raises(ConfigError, match="SB_TLS_CERT"):
        gateway(SB_ENV="production")
    assert gateway(SB_ENV="production", SB_TRUSTED_PROXIES="10.0.0.1").env == "production"
    with pytest.raises(ConfigError, match="go together"):
        gateway(SB_TLS_CERT="/x.pem")
