"""Gateways bound to the host end of the veth pair (the one address the namespace reaches; not
0.0.0.0, so nothing else listens), with a heartbeat short enough for a 2 s silence to fail it:
a ping every 500 ms, 400 ms for its pong, closed (4000) after two misses in a row."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.support import processes
from tests.support.processes import Service
from tests.support.tokens import SECRET

HEARTBEAT = {"SB_PING_INTERVAL_MS": "500", "SB_PING_TIMEOUT_MS": "400", "SB_PING_MISSES": "2"}


@dataclass
class BoundService(Service):
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"


def bound_gateway(nats_url: str, host: str, **env: str) -> BoundService:
    plain = processes.gateway(nats_url, SECRET, **HEARTBEAT, **env)
    return BoundService(plain.module, {**plain.env, "SB_HOST": host}, plain.port, host=host)


def start_gateways(nats_url: str, host: str, log_dir: Path, count: int = 2) -> list[Service]:
    """``count`` gateways on ``host``; on a failed start the ones already up are stopped."""
    started: list[Service] = []
    try:
        for _ in range(count):
            started.append(bound_gateway(nats_url, host).start(log_dir))
    except BaseException:
        for service in started:
            service.stop()
        raise
    return started
