"""Service settings: one frozen object per service, read from ``SB_*`` variables.

Every field names its variable, unit and default in its metadata, so the README table, the
error messages and the loader all come from one declaration. A bad value fails at start-up with
the variable and the value in the message, never later inside a handler.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any, TypeVar

from shared.namespaces import BUILT_IN, NamespaceTable
from shared.namespaces_file import NamespacesFileError, load_namespaces
from shared.presence_wire import TYPING_REFRESH_S

MIN_SECRET_BYTES = 32


class ConfigError(ValueError):
    """A setting could not be parsed; the message names the variable and the value."""


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected one of 1/0, true/false, yes/no, on/off")


def _parse_positive_int(raw: str) -> int:
    value = int(raw.strip())
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _parse_positive_float(raw: str) -> float:
    value = float(raw.strip())
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a positive number")
    return value


def _parse_non_negative_float(raw: str) -> float:
    value = float(raw.strip())
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be zero or more")
    return value


def _parse_non_negative_int(raw: str) -> int:
    value = int(raw.strip())
    if value < 0:
        raise ValueError("must be zero or more")
    return value


def _parse_urls(raw: str) -> tuple[str, ...]:
    urls = _parse_csv(raw)
    if not urls:
        raise ValueError("needs at least one URL")
    return urls


def _parse_networks(raw: str) -> tuple[IPv4Network | IPv6Network, ...]:
    return tuple(ip_network(item, strict=False) for item in _parse_csv(raw))


def _parse_port(raw: str) -> int:
    value = int(raw.strip())
    if not 0 <= value <= 65535:
        raise ValueError("must be a TCP port between 0 and 65535")
    return value


def _parse_csv(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _parse_transports(raw: str) -> tuple[str, ...]:
    transports = _parse_csv(raw)
    unknown = sorted(set(transports) - {"polling", "websocket"})
    if unknown or not transports:
        raise ValueError("expected a comma-separated list of polling, websocket")
    return transports


def _parse_env(raw: str) -> str:
    value = raw.strip().lower()
    if value not in {"development", "production"}:
        raise ValueError("must be 'development' or 'production'")
    return value


def _parse_algorithms(raw: str) -> tuple[str, ...]:
    algorithms = _parse_csv(raw)
    if not algorithms:
        raise ValueError("needs at least one algorithm")
    if any(alg.lower() == "none" for alg in algorithms):
        raise ValueError("'none' is never an accepted JWT algorithm")
    return algorithms


def _setting(env: str, parse: Callable[[str], Any], default: Any, doc: str) -> Any:
    return field(default=default, metadata={"env": env, "parse": parse, "doc": doc})


def _default_instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    """Settings every service shares."""

    env: str = _setting("SB_ENV", _parse_env, "development",
                        "`development` or `production` (production refuses plain ws://)")
    host: str = _setting("SB_HOST", str, "127.0.0.1", "address the HTTP/WebSocket port binds")
    port: int = _setting("SB_PORT", _parse_port, 8001,
                         "HTTP port (gateway: Socket.IO + health; others: API + health)")
    nats_url: tuple[str, ...] = _setting("SB_NATS_URL", _parse_urls, ("nats://127.0.0.1:4222",),
                                         "comma-separated NATS server URLs")
    subject_prefix: str = _setting("SB_SUBJECT_PREFIX", str, "sb",
                                   "first token of every subject and KV bucket name")
    instance_id: str = _setting("SB_INSTANCE_ID", str, "",
                                "this process's id in the cluster (default: host-pid)")
    log_level: str = _setting("SB_LOG_LEVEL", str, "INFO", "Python log level")
    namespaces_file: str = _setting("SB_NAMESPACES_FILE", str, "",
                                    "TOML file declaring the application's namespaces "
                                    "(docs/namespaces.md; give every service the same file; "
                                    "unset = the built-in four)")
    namespaces: NamespaceTable = field(default_factory=lambda: BUILT_IN, init=False,
                                       repr=False, compare=False)
    """The namespace table this service serves: the built-in four and the file's, loaded
    once here so a bad file stops the service before it binds a port."""

    def __post_init__(self) -> None:
        if not self.instance_id:
            object.__setattr__(self, "instance_id", _default_instance_id())
        if self.namespaces_file:
            try:
                table = load_namespaces(self.namespaces_file)
            except NamespacesFileError as exc:
                raise ConfigError(f"SB_NAMESPACES_FILE={self.namespaces_file!r}: {exc}") from None
            object.__setattr__(self, "namespaces", table)


@dataclass(frozen=True, slots=True)
class ClusterSettings(ServiceSettings):
    """What every service that keeps state in JetStream or reads gateway liveness shares.
    Give every service the same values: whichever starts first creates the buckets, and a KV
    bucket keeps the TTL and replicas it was created with."""

    gateway_ttl_s: float = _setting("SB_GATEWAY_TTL_S", _parse_positive_float, 3.0,
                                    "a dead gateway's connections stop counting after, s")
    stream_replicas: int = _setting("SB_STREAM_REPLICAS", _parse_positive_int, 1,
                                    "replicas of the streams and KV buckets the service creates "
                                    "(3 on a 3-node NATS cluster)")


@dataclass(frozen=True, slots=True)
class GatewaySettings(ClusterSettings):
    """The gateway's settings; the defaults are the public contract's."""

    jwt_secret: str = _setting("SB_JWT_SECRET", str, "", "HS* key for JWT verification")
    jwt_public_key: str = _setting("SB_JWT_PUBLIC_KEY", str, "",
                                   "PEM key for RS*/ES*/EdDSA JWT verification")
    jwt_algorithms: tuple[str, ...] = _setting("SB_JWT_ALGORITHMS", _parse_algorithms,
                                               ("HS256",), "accepted JWT algorithms")
    jwt_audience: str = _setting("SB_JWT_AUDIENCE", str, "", "required `aud`, if set")
    jwt_issuer: str = _setting("SB_JWT_ISSUER", str, "", "required `iss`, if set")
    jwt_leeway_s: int = _setting("SB_JWT_LEEWAY_S", _parse_non_negative_int, 10,
                                 "clock leeway in seconds")
    allowed_origins: tuple[str, ...] = _setting(
        "SB_ALLOWED_ORIGINS", _parse_csv, (),
        "comma-separated Origin allow-list for upgrades and polling, also the CORS allow-list "
        "(unset = any origin, CORS `*` without credentials)")
    transports: tuple[str, ...] = _setting(
        "SB_TRANSPORTS", _parse_transports, ("polling", "websocket"),
        "Engine.IO transports served: `polling` (HTTP long-polling, the first step of "
        "socket.io-client's defaults) and `websocket`")
    tls_cert: str = _setting("SB_TLS_CERT", str, "", "PEM certificate file: serve wss://")
    tls_key: str = _setting("SB_TLS_KEY", str, "", "PEM private key file of SB_TLS_CERT")
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = _setting(
        "SB_TRUSTED_PROXIES", _parse_networks, (),
        "comma-separated proxy addresses/CIDRs whose X-Forwarded-Proto is believed")
    drain_window_s: float = _setting("SB_DRAIN_WINDOW_S", _parse_non_negative_float, 10.0,
                                     "SIGTERM: connections are closed (1012) spread over, s")
    drain_rate: float = _setting("SB_DRAIN_RATE", _parse_positive_float, 2_000.0,
                                 "SIGTERM: at most this many closes per second (a drain "
                                 "takes connections / rate s, the window at most)")
    ping_interval_ms: int = _setting("SB_PING_INTERVAL_MS", _parse_positive_int, 25_000,
                                     "Engine.IO ping interval, ms")
    ping_timeout_ms: int = _setting("SB_PING_TIMEOUT_MS", _parse_positive_int, 5_000,
                                    "time a pong may take, ms")
    ping_misses: int = _setting("SB_PING_MISSES", _parse_positive_int, 2,
                                "consecutive missed pongs before close 4000")
    max_payload: int = _setting("SB_MAX_PAYLOAD", _parse_positive_int, 1_000_000,
                                "largest WebSocket frame, bytes (over it: close 1009)")
    connect_timeout_ms: int = _setting("SB_CONNECT_TIMEOUT_MS", _parse_positive_int, 45_000,
                                       "time from open packet to first namespace CONNECT, ms")
    send_budget_bytes: int = _setting("SB_SEND_BUDGET_BYTES", _parse_positive_int, 1_000_000,
                                      "per-connection unsent bytes before close 4008")
    chat_rate: float = _setting("SB_CHAT_RATE", _parse_positive_float, 100.0,
                                "message:send and typing events per second per connection")
    chat_burst: int = _setting("SB_CHAT_BURST", _parse_positive_int, 100, "chat burst")
    request_rate: float = _setting("SB_REQUEST_RATE", _parse_positive_float, 10.0,
                                   "join/leave/history/presence/unknown events per second")
    request_burst: int = _setting("SB_REQUEST_BURST", _parse_positive_int, 20,
                                  "request burst")
    attachment_max_bytes: int = _setting("SB_ATTACHMENT_MAX_BYTES", _parse_positive_int,
                                         262_144, "message attachment limit, bytes")
    max_user_connections: int = _setting("SB_MAX_USER_CONNECTIONS", _parse_positive_int, 5,
                                         "connections one user may hold, cluster-wide")
    max_opening: int = _setting(
        "SB_MAX_OPENING", _parse_positive_int, 64,
        "namespace CONNECTs processed at once (the rest wait their turn, in order)")
    inbox_max: int = _setting("SB_INBOX_MAX", _parse_positive_int, 100,
                              "messages kept per offline user for /notifications")
    inbox_max_age_s: float = _setting("SB_INBOX_MAX_AGE_S", _parse_positive_float, 604_800.0,
                                      "how long an offline user's messages are kept, s")
    events_dir: str = _setting("SB_EVENTS_DIR", str, "",
                               "folder of operator event schemas: <namespace>/<event>.json")
    write_delay_ms: float = _setting("SB_WRITE_DELAY_MS", _parse_non_negative_float, 0.0,
                                     "gather a socket's frames this long into one write, ms")
    fanout_batch: int = _setting("SB_FANOUT_BATCH", _parse_positive_int, 2_000,
                                 "members written per batch before yielding to the loop")
    recovery_window_s: float = _setting("SB_RECOVERY_WINDOW_S", _parse_positive_float, 120.0,
                                         "how long a dropped session stays recoverable, s")
    dedup_window_s: float = _setting("SB_DEDUP_WINDOW_S", _parse_positive_float, 120.0,
                                     "message:send retries with one id are stored once within, s")
    log_max_age_s: float = _setting("SB_LOG_MAX_AGE_S", _parse_positive_float, 604_800.0,
                                    "how long the room log keeps messages, s")
    log_max_per_room: int = _setting("SB_LOG_MAX_PER_ROOM", _parse_positive_int, 10_000,
                                     "messages the log keeps per room")
    hook_max_in_flight: int = _setting(
        "SB_HOOK_MAX_IN_FLIGHT", _parse_positive_int, 1_000,
        "application hook requests awaiting a reply, gateway-wide (over it: `overloaded`)")

    def __post_init__(self) -> None:
        ServiceSettings.__post_init__(self)
        if not self.jwt_secret and not self.jwt_public_key:
            raise ConfigError("SB_JWT_SECRET (or SB_JWT_PUBLIC_KEY) must be set for the gateway")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError("SB_TLS_CERT and SB_TLS_KEY go together")
        if self.env == "production" and not self.tls_cert and not self.trusted_proxies:
            raise ConfigError("SB_ENV=production needs SB_TLS_CERT/SB_TLS_KEY (wss://) or "
                              "SB_TRUSTED_PROXIES (the TLS-terminating proxies in front)")
        if self.jwt_secret and len(self.jwt_secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"SB_JWT_SECRET=<redacted>: must be at least {MIN_SECRET_BYTES} "
                              "bytes (RFC 7518 3.2)")


@dataclass(frozen=True, slots=True)
class RouterSettings(ClusterSettings):
    """The router's settings: the server API's key and limits."""

    api_key: str = _setting("SB_API_KEY", str, "", "bearer key of the server API")
    api_rate: float = _setting("SB_API_RATE", _parse_positive_float, 1000.0,
                               "server API requests per second, per router (HTTP and NATS)")
    api_burst: int = _setting("SB_API_BURST", _parse_positive_int, 2000,
                              "server API burst, requests, per router")

    def __post_init__(self) -> None:
        ServiceSettings.__post_init__(self)
        if not self.api_key:
            # an empty key would let an empty bearer token through
            raise ConfigError("SB_API_KEY must be set for the router")


@dataclass(frozen=True, slots=True)
class PresenceSettings(ClusterSettings):
    """The presence service's settings (timings in seconds)."""

    grace_s: float = _setting("SB_PRESENCE_GRACE_S", _parse_non_negative_float, 5.0,
                              "a user goes offline / leaves a room this long after the last "
                              "socket went, s")
    typing_ttl_s: float = _setting("SB_TYPING_TTL_S", _parse_positive_float, 5.0,
                                   "typing:stop is sent after this long without typing:start, s")
    big_room: int = _setting("SB_PRESENCE_BIG_ROOM", _parse_positive_int, 100,
                             "rooms with more members get count summaries, not per-user events")
    summary_interval_s: float = _setting("SB_PRESENCE_SUMMARY_S", _parse_positive_float, 2.0,
                                         "at most one count summary per big room per, s")
    list_max: int = _setting("SB_PRESENCE_LIST_MAX", _parse_positive_int, 1_000,
                             "room:presence lists at most this many users (count is exact)")
    replica_ttl_s: float = _setting("SB_PRESENCE_REPLICA_TTL_S", _parse_positive_float, 3.0,
                                    "a dead presence replica's share moves on after, s")

    def __post_init__(self) -> None:
        ServiceSettings.__post_init__(self)
        if self.typing_ttl_s <= TYPING_REFRESH_S:
            raise ConfigError(f"SB_TYPING_TTL_S={self.typing_ttl_s}: must be longer than the "
                              f"{TYPING_REFRESH_S} s gateways take between typing refreshes")


S = TypeVar("S", bound=ServiceSettings)


def read_config_file(path: Path) -> dict[str, str]:
    """Read ``SB_X=value`` lines (``#`` comments, blank lines allowed)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        if not sep or not key.strip().startswith("SB_"):
            # never echo the line: it may hold a secret
            raise ConfigError(f"{path}:{number}: expected SB_NAME=value")
        values[key.strip()] = value.strip()
    return values


def load(cls: type[S], environ: Mapping[str, str] | None = None) -> S:
    """Build ``cls`` from ``SB_*`` variables (and ``SB_CONFIG_FILE``; variables win)."""
    env = dict(os.environ if environ is None else environ)
    config_file = env.get("SB_CONFIG_FILE")
    from_file: dict[str, str] = {}
    if config_file:
        try:
            from_file = read_config_file(Path(config_file))
        except OSError as exc:
            raise ConfigError(f"SB_CONFIG_FILE={config_file!r}: {exc.strerror}") from None
    merged = {**from_file, **env}
    kwargs: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        name = item.metadata.get("env")
        if name is None or name not in merged:  # a field derived from others has no variable
            continue
        raw = merged[name]
        try:
            kwargs[item.name] = item.metadata["parse"](raw)
        except ValueError as exc:
            if _is_secret(name):  # a parser's message may quote its input
                raise ConfigError(f"{name}=<redacted>: invalid value") from None
            raise ConfigError(f"{name}={raw!r}: {exc}") from None
    return cls(**kwargs)


def _is_secret(name: str) -> bool:
    return any(word in name for word in ("SECRET", "KEY", "TOKEN"))


def describe(cls: type[ServiceSettings]) -> list[tuple[str, str, str]]:
    """(variable, default, meaning) rows, for docs and ``--help``."""
    rows = []
    for item in dataclasses.fields(cls):
        if "env" not in item.metadata:
            continue
        default = item.default
        shown = ",".join(default) if isinstance(default, tuple) else str(default)
        rows.append((item.metadata["env"], shown, item.metadata["doc"]))
    return rows
