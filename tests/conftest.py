"""Fixtures: a real nats-server on free ports and real gateway processes.

Every process a fixture starts is stopped by PID in its finaliser, whatever the test did.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from devcluster.natsserver import NatsServer
from tests.support import processes
from tests.support.jsclient import JsClients
from tests.support.processes import Service
from tests.support.tokens import SECRET


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    server = NatsServer(jetstream=True, monitoring=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def service_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service-logs")


@pytest.fixture(scope="session")
def gateway_pair(nats_server: NatsServer, service_logs: Path) -> Iterator[list[Service]]:
    """Two gateways on one NATS, shared by the tests that need no special settings."""
    started: list[Service] = []
    try:
        for _ in range(2):
            started.append(processes.gateway(nats_server.url, SECRET).start(service_logs))
        yield started
    finally:
        for service in started:
            service.stop()


@pytest.fixture
def start_gateway(
    nats_server: NatsServer, service_logs: Path
) -> Iterator[Callable[..., Service]]:
    """A gateway with extra ``SB_*`` settings, stopped when the test ends."""
    started: list[Service] = []

    def start(scheme: str = "http", **env: str) -> Service:
        service = processes.gateway(nats_server.url, SECRET, scheme, **env)
        started.append(service)
        return service.start(service_logs)

    try:
        yield start
    finally:
        for service in started:
            service.stop()


@pytest.fixture
async def js() -> AsyncIterator[JsClients]:
    """One node process driving any number of real socket.io-client sockets."""
    clients = await JsClients.start()
    try:
        yield clients
    finally:
        await clients.stop()
