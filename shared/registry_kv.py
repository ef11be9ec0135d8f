"""The connection registry in NATS KV: per-user entries changed by compare-and-set, and
per-gateway liveness keys that expire on their own.

Two buckets: ``<prefix>-registry`` (one key per user, history 1) and ``<prefix>-gateways`` (one
key per live gateway, bucket TTL; delete markers on expiry so watchers see a gateway die).
Every process that needs liveness keeps it current from a watch, so admission reads nothing but
the user's entry. Concurrent admissions on different gateways race on the entry's revision;
the loser re-reads and retries with a short jittered backoff, which ordinary contention never
exhausts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import Error as JetStreamError
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from shared.natsconn import key_value
from shared.registry import (
    Admitted,
    ConnectionInfo,
    Refused,
    UserEntry,
    admit,
    drop_gateway,
    release,
)
from shared.subjects import decode_token, encode_token

log = logging.getLogger(__name__)

CAS_ATTEMPTS = 50


class RegistryUnavailable(Exception):
    """NATS could not answer; admission cannot be decided now."""


class RegistryKV:
    def __init__(self, registry: KeyValue, gateways: KeyValue, gateway_ttl_s: float) -> None:
        self._registry = registry
        self._gateways = gateways
        self.gateway_ttl_s = gateway_ttl_s
        self.live: set[str] = set()
        self.on_gateway_gone: Callable[[str], None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def open(cls, nc: Client, prefix: str, gateway_ttl_s: float,
                   replicas: int = 1) -> RegistryKV:
        js = nc.jetstream(timeout=2.0)
        registry = await key_value(js, KeyValueConfig(
            bucket=f"{prefix}-registry", history=1, replicas=replicas, storage=StorageType.FILE))
        gateways = await key_value(js, KeyValueConfig(
            bucket=f"{prefix}-gateways", history=1, ttl=gateway_ttl_s,
            limit_marker_ttl=max(1.0, gateway_ttl_s), replicas=replicas,
            storage=StorageType.MEMORY))
        return cls(registry, gateways, gateway_ttl_s)

    # --- gateway liveness -----------------------------------------------------------------

    async def beat(self, gateway: str) -> None:
        """Keep ``gateway``'s liveness key alive (refreshing three times per TTL)."""
        await self.refresh(gateway)
        self.live.add(gateway)
        self._tasks.append(asyncio.get_running_loop().create_task(self._beat(gateway)))

    async def refresh(self, gateway: str) -> None:
        """Put ``gateway``'s liveness key (again): the beat does, and a gateway whose key
        lapsed while it lived does at once."""
        await self._gateways.put(encode_token(gateway), b"1")

    async def _beat(self, gateway: str) -> None:
        while True:
            await asyncio.sleep(self.gateway_ttl_s / 3)
            try:
                await self.refresh(gateway)
            except (NatsError, JetStreamError, TimeoutError):
                log.warning("gateway liveness refresh failed; retrying")

    async def watch(self) -> None:
        """Follow the liveness bucket: the live set is current from here on."""
        watcher = await self._gateways.watchall()
        initial_done = asyncio.Event()

        async def follow() -> None:
            async for entry in watcher:
                if entry is None:
                    initial_done.set()
                    continue
                try:
                    gateway = decode_token(entry.key)
                except ValueError:
                    continue
                if entry.operation in ("DEL", "PURGE") or entry.value in (None, b""):
                    self.live.discard(gateway)
                    if self.on_gateway_gone is not None:
                        self.on_gateway_gone(gateway)
                else:
                    self.live.add(gateway)

        self._tasks.append(asyncio.get_running_loop().create_task(follow()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(initial_done.wait(), 5.0)

    # --- user entries ---------------------------------------------------------------------

    async def entry(self, user: str) -> UserEntry:
        return (await self._read(user))[0]

    async def admit(self, user: str, conn_id: str, info: ConnectionInfo,
                    limit: int) -> Admitted | Refused:
        def change(entry: UserEntry) -> Admitted | Refused:
            return admit(entry, conn_id, info, self.live, limit)

        return await self._cas(user, change)

    async def release(self, user: str, conn_id: str) -> None:
        await self._cas(user, lambda entry: Admitted(release(entry, conn_id)))

    async def drop_gateway(self, user: str, gateway: str) -> None:
        await self._cas(user, lambda entry: Admitted(drop_gateway(entry, gateway)))

    async def users(self) -> list[str]:
        try:
            keys = await self._registry.keys()
        except (NatsError, JetStreamError, TimeoutError):
            return []
        except Exception:  # nats-py raises NoKeysError for an empty bucket
            return []
        found = []
        for key in keys:
            with contextlib.suppress(ValueError):
                found.append(decode_token(key.removeprefix("u.")))
        return found

    async def _read(self, user: str) -> tuple[UserEntry, int | None]:
        try:
            current = await self._registry.get(f"u.{encode_token(user)}")
        except KeyNotFoundError:
            return UserEntry(), None
        except (NatsError, JetStreamError, TimeoutError) as exc:
            raise RegistryUnavailable(str(exc) or type(exc).__name__) from exc
        if current.value is None:  # a delete marker
            return UserEntry(), current.revision
        return UserEntry.decode(current.value), current.revision

    async def _cas(self, user: str,
                   change: Callable[[UserEntry], Admitted | Refused]) -> Admitted | Refused:
        key = f"u.{encode_token(user)}"
        for attempt in range(CAS_ATTEMPTS):
            entry, revision = await self._read(user)
            result = change(entry)
            if isinstance(result, Refused):
                return result
            try:
                if revision is None:
                    await self._registry.create(key, result.entry.encode())
                else:
                    await self._registry.update(key, result.entry.encode(), last=revision)
                return result
            except (KeyWrongLastSequenceError, JetStreamError) as exc:
                if not _conflict(exc):
                    raise RegistryUnavailable(str(exc)) from exc
                await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
            except (NatsError, TimeoutError) as exc:
                raise RegistryUnavailable(str(exc) or type(exc).__name__) from exc
        raise RegistryUnavailable("registry entry kept changing")

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _conflict(exc: Exception) -> bool:
    """Whether a failed write lost a compare-and-set race (retry) rather than failed."""
    if isinstance(exc, KeyWrongLastSequenceError):
        return True
    return "wrong last sequence" in str(exc) or "key exists" in str(exc)
