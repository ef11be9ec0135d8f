"""devcluster's load balancer: one URL on the base port in front of every gateway.

It does what the compose HAProxy and a Kubernetes Service do, so the local cluster behaves
like production: round-robin per TCP connection with no stickiness (polling requests that
land on another gateway are forwarded by the gateways themselves), ``/readyz`` checked every
half second so a gateway that is down, restarting or draining gets no new connections, and
the next gateway tried when a connect is refused. Bytes are copied untouched (TCP mode), so
WebSocket upgrades and long-polls pass as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import aiohttp

from devcluster.rotation import Rotation, Upstream
from devcluster.tcpproxy import splice

log = logging.getLogger("devcluster")

HEALTH_INTERVAL_S = 0.5
CONNECT_TIMEOUT_S = 1.0


class Balancer:
    """The listening socket, the health checks and the open pairs."""

    def __init__(self, host: str, port: int, upstreams: Sequence[Upstream]) -> None:
        self.host = host
        self.port = port
        self.rotation = Rotation(upstreams)
        self._server: asyncio.Server | None = None
        self._checks: asyncio.Task[None] | None = None
        self._pairs: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen (raises ``OSError`` if the port is taken) and start the health checks."""
        self._server = await asyncio.start_server(self._accept, self.host, self.port,
                                                  backlog=4096, reuse_address=True)
        self._checks = asyncio.create_task(self._check_forever())

    def stop_accepting(self) -> None:
        """Take no new connections but keep relaying the open ones, so a draining gateway's
        1012 still reaches its clients through the balancer."""
        if self._server is not None:
            self._server.close()

    async def stop(self) -> None:
        """Stop accepting, the health checks and every open pair."""
        self.stop_accepting()
        for task in (self._checks, *self._pairs):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (self._checks, *self._pairs) if t is not None),
                             return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._pairs.add(task)
        try:
            upstream = await self._connect()
            if upstream is None:
                return
            await splice(reader, writer, *upstream)
        except asyncio.CancelledError:
            pass  # stop() cancels the open pairs; nobody awaits a connection handler
        finally:
            self._pairs.discard(task)
            writer.transport.abort()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The first upstream in the rotation's order that accepts; ``None`` if none does."""
        for host, port in self.rotation.order():
            try:
                return await asyncio.wait_for(asyncio.open_connection(host, port),
                                              CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError):
                self.rotation.mark((host, port), False)
        log.warning("balancer: no gateway accepted a connection")
        return None

    async def check_all(self) -> None:
        """One round of health checks now: devcluster runs one before READY, so the rotation
        a client meets first already counts every gateway that became ready."""
        timeout = aiohttp.ClientTimeout(total=HEALTH_INTERVAL_S * 2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await self._check_round(session)

    async def _check_forever(self) -> None:
        timeout = aiohttp.ClientTimeout(total=HEALTH_INTERVAL_S * 2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                await self._check_round(session)
                await asyncio.sleep(HEALTH_INTERVAL_S)

    async def _check_round(self, session: aiohttp.ClientSession) -> None:
        await asyncio.gather(*(self._check(session, up) for up in self.rotation.upstreams))

    async def _check(self, session: aiohttp.ClientSession, upstream: Upstream) -> None:
        host, port = upstream
        healthy = False
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(f"http://{host}:{port}/readyz") as response:
                healthy = response.status == 200
        if healthy != self.rotation.healthy(upstream):
            log.info("balancer: gateway %s:%d %s", host, port,
                     "back in rotation" if healthy else "out of rotation")
        self.rotation.mark(upstream, healthy)
