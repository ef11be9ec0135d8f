"""Per-user connection limit and who-is-where on this gateway.

Admission happens at a connection's first namespace CONNECT for each user it carries (that is
when the identity is known), against the cluster-wide registry; a refusal is a CONNECT_ERROR,
terminal for socket.io-client (an HTTP 429 would make it retry forever). The local index of
connections by user serves kicks; the index by connection id lets a close find its users
without scanning every connection (a drain closes them all).

At most ``max_opening`` namespace CONNECTs are processed at once (admission, the recoverable
session, the room joins, a recovery's replay), the rest wait their turn in arrival order: when
a gateway dies and its clients all reconnect to a survivor, thousands of opens each awaiting
NATS would otherwise share one event loop until their requests time out, and the survivor
would hand out fresh sessions where every one could have been recovered. Waiting costs
nothing but a place in the queue; an open that is not waiting does not even suspend.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from gateway.actions import Restore
from shared.metrics import GatewayMetrics
from shared.registry import ConnectionInfo, Refused
from shared.registry_kv import RegistryKV, RegistryUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


class Kickable(Protocol):
    eio_sid: str

    async def kick(self, user: str, reason: str) -> bool: ...


class Admission:
    def __init__(self, registry: RegistryKV | None, gateway: str, limit: int,
                 metrics: GatewayMetrics, max_opening: int) -> None:
        self._registry = registry
        self._opening = asyncio.Semaphore(max_opening)
        self._gateway = gateway
        self._limit = limit
        self._metrics = metrics
        self.by_user: dict[str, set[Kickable]] = {}
        self._namespaces: dict[tuple[str, str], tuple[str, ...]] = {}
        self._users: dict[str, set[str]] = {}  # connection id -> users it carries

    async def paced(self, opening: Callable[[], Awaitable[T]]) -> T:
        """Run ``opening`` (a namespace open) once fewer than ``max_opening`` are running."""
        if self._opening.locked():
            self._metrics.opens_waiting.inc()
            try:
                await self._opening.acquire()
            finally:
                self._metrics.opens_waiting.dec()
        else:
            await self._opening.acquire()
        try:
            return await opening()
        finally:
            self._opening.release()

    async def admit(self, conn: Kickable, user: str, nsp: str,
                    restore: Restore | None = None) -> bool:
        """Admit ``conn`` for ``user`` (again, with one more namespace, if already in).
        ``restore``: the client is recovering a session, so its user most likely has an
        entry already (held by the gateway it lost): read it rather than guess a create that
        would fail and cost a read anyway."""
        key = (conn.eio_sid, user)
        namespaces = tuple(sorted({*self._namespaces.get(key, ()), nsp}))
        if self._registry is not None:
            info = ConnectionInfo(self._gateway, namespaces, time.time(), self._registry.boot)
            try:
                verdict = await self._registry.admit(user, conn.eio_sid, info, self._limit,
                                                     guess=restore is None)
            except RegistryUnavailable:
                log.warning("registry unavailable: admitting without the per-user limit")
                self._metrics.admissions.labels("unchecked").inc()
            else:
                if isinstance(verdict, Refused):
                    self._metrics.admissions.labels("refused").inc()
                    return False
                self._metrics.admissions.labels("admitted").inc()
        self._namespaces[key] = namespaces
        self._users.setdefault(conn.eio_sid, set()).add(user)
        self.by_user.setdefault(user, set()).add(conn)
        return True

    def forget(self, conn: Kickable) -> None:
        """The connection moved to another gateway, which took its registry slot over: drop
        it from the local indexes only."""
        for user in self._users.pop(conn.eio_sid, ()):
            del self._namespaces[(conn.eio_sid, user)]
            holders = self.by_user.get(user)
            if holders is not None:
                holders.discard(conn)
                if not holders:
                    del self.by_user[user]

    async def release(self, conn: Kickable) -> None:
        """The connection is gone: free its slot for every user it carried."""
        users = self._users.get(conn.eio_sid, set())
        self.forget(conn)
        for user in users:
            if self._registry is not None:
                try:
                    await self._registry.release(user, conn.eio_sid)
                except RegistryUnavailable:
                    log.warning("registry unavailable: a slot frees when this gateway's "
                                "entries are reaped")

    async def kick(self, user: str, reason: str) -> int:
        kicked = 0
        for conn in list(self.by_user.get(user, ())):
            if await conn.kick(user, reason):
                kicked += 1
        log.info("kicked %d connection(s) of a user: %s", kicked, reason)
        return kicked
