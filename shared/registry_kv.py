"""The connection registry in NATS KV: per-user entries changed by compare-and-set, and
per-gateway liveness keys that expire on their own.

Two buckets: ``<prefix>-registry`` (one key per user, history 1) and ``<prefix>-gateways`` (one
key per live gateway, bucket TTL; delete markers on expiry so watchers see a gateway die).
Every process that needs liveness keeps it current from a watch, so admission reads nothing but
the user's entry. Concurrent admissions on different gateways race on the entry's revision;
the loser re-reads and retries with a short jittered backoff, which ordinary contention never
exhausts.

Round trips: every write is a compare-and-set, so what it is based on may be a guess. This
process remembers the entry and revision its own last write returned for each user (bounded);
an admission with nothing remembered tries a create (which fails if the key exists), a release
updates the remembered revision, and a read happens only after a conflict. Reads are direct
gets (any replica answers; a stale one only costs a retry), except the one a refusal rests on:
it comes from the stream leader, so a stale copy can never turn a client away.
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
from nats.js.client import JetStreamContext
from nats.js.errors import Error as JetStreamError
from nats.js.errors import KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from shared.backoff import CAS_RACE
from shared.kv_write import RawReply, RawRequest, write_headers, written
from shared.light_client import header_int
from shared.natsconn import key_value
from shared.recent import Recent
from shared.registry import (
    Admitted,
    ConnectionInfo,
    Refused,
    UserEntry,
    admit,
    drop_gateway,
    release,
)
from shared.request_mux import RawClient, RequestMux
from shared.subjects import (
    Subjects,
    decode_token,
    direct_get,
    gateway_key,
    kv_stream,
    kv_subject_prefix,
    registry_key,
    user_of_registry_key,
)

log = logging.getLogger(__name__)

CAS_ATTEMPTS = 50
KNOWN_MAX = 65_536  # users whose last written revision is remembered


class RegistryUnavailable(Exception):
    """NATS could not answer; admission cannot be decided now."""


_SEQUENCE = b"\r\nNats-Sequence: "
_GONE = (b"\r\nKV-Operation: ", b"\r\nNats-Marker-Reason: ")  # a delete or expiry marker


class RegistryKV:
    def __init__(self, registry: KeyValue, gateways: KeyValue, gateway_ttl_s: float,
                 js: JetStreamContext, bucket: str, request: RawRequest | None = None) -> None:
        self._registry = registry
        self._request = request
        self._mux: RequestMux | None = None
        self._js = js
        self._stream = kv_stream(bucket)
        self._subject_prefix = kv_subject_prefix(bucket)
        self._gateways = gateways
        self.gateway_ttl_s = gateway_ttl_s
        self.live: dict[str, str] = {}
        """Live gateway → the boot id its liveness key holds."""
        self.boot = ""
        """This process's gateway run, once :meth:`beat` has registered it."""
        self.on_gateway_gone: Callable[[str], None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._known: Recent[str, tuple[UserEntry, int]] = Recent(KNOWN_MAX)

    @classmethod
    async def open(cls, nc: Client, prefix: str, gateway_ttl_s: float,
                   replicas: int = 1, request: RawRequest | None = None) -> RegistryKV:
        """Reads (direct) and writes of user entries go through ``request``, or through a
        light request mux of the client's own when it supports one (the gateway's)."""
        js = nc.jetstream(timeout=2.0)
        subjects = Subjects(prefix)
        bucket = subjects.registry_bucket()
        registry = await key_value(js, KeyValueConfig(
            bucket=bucket, history=1, replicas=replicas, storage=StorageType.FILE, direct=True))
        await allow_direct(js, kv_stream(bucket))
        gateways = await key_value(js, KeyValueConfig(
            bucket=subjects.gateways_bucket(), history=1, ttl=gateway_ttl_s,
            limit_marker_ttl=max(1.0, gateway_ttl_s), replicas=replicas,
            storage=StorageType.MEMORY))
        mux = None
        if request is None and isinstance(nc, RawClient):
            mux = RequestMux(nc, 2.0, RegistryUnavailable)
            await mux.start()
            request = mux.request
        opened = cls(registry, gateways, gateway_ttl_s, js, bucket, request)
        opened._mux = mux
        return opened

    # --- gateway liveness -----------------------------------------------------------------

    async def beat(self, gateway: str, boot: str) -> None:
        """Keep ``gateway``'s liveness key alive, holding ``boot`` (refreshing three times per
        TTL): a restart under the same id replaces the boot, and its dead run's connections
        stop counting at once."""
        self.boot = boot
        await self.refresh(gateway)
        self.live[gateway] = boot
        self._tasks.append(asyncio.get_running_loop().create_task(self._beat(gateway)))

    async def refresh(self, gateway: str) -> None:
        """Put ``gateway``'s liveness key (again): the beat does, and a gateway whose key
        lapsed while it lived does at once."""
        await self._gateways.put(gateway_key(gateway), (self.boot or "1").encode())

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
                    self.live.pop(gateway, None)
                    if self.on_gateway_gone is not None:
                        self.on_gateway_gone(gateway)
                else:
                    self.live[gateway] = _boot_of(entry.value)

        self._tasks.append(asyncio.get_running_loop().create_task(follow()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(initial_done.wait(), 5.0)

    # --- user entries ---------------------------------------------------------------------

    async def entry(self, user: str) -> UserEntry:
        return (await self._read(user))[0]

    async def admit(self, user: str, conn_id: str, info: ConnectionInfo,
                    limit: int, guess: bool = True) -> Admitted | Refused:
        """``guess``: with no write of its own to start from, start from a create."""
        def change(entry: UserEntry) -> Admitted | Refused:
            return admit(entry, conn_id, info, self.live, limit)

        return await self._cas(user, change, guess=guess)

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
                found.append(user_of_registry_key(key))
        return found

    async def _read(self, user: str, leader: bool = False) -> tuple[UserEntry, int | None]:
        """The user's entry and its revision: a direct get (any replica), or from the stream
        leader when a refusal is to rest on it."""
        subject = self._subject_prefix + registry_key(user)
        if self._request is not None and not leader:
            reply = await self._raw(direct_get(self._stream, subject), b"", None)
            if reply.status == b"404":
                return UserEntry(), None
            headers = reply.headers or b""
            revision = header_int(headers, _SEQUENCE)
            if reply.status or revision is None:
                raise RegistryUnavailable(f"registry read failed ({reply.status.decode()})")
            if any(marker in headers for marker in _GONE):
                return UserEntry(), revision
            return UserEntry.decode(reply.data), revision
        try:
            msg = await self._js.get_msg(self._stream, subject=subject, direct=not leader)
        except NotFoundError:
            return UserEntry(), None
        except (NatsError, JetStreamError, TimeoutError) as exc:
            raise RegistryUnavailable(str(exc) or type(exc).__name__) from exc
        headers_of = msg.headers or {}
        if headers_of.get("KV-Operation") in ("DEL", "PURGE") or "Nats-Marker-Reason" in headers_of:
            return UserEntry(), msg.seq
        return UserEntry.decode(msg.data), msg.seq

    async def _write(self, key: str, value: bytes, last: int) -> int | None:
        """Compare-and-set at revision ``last`` (0: create): the new revision, or ``None``
        when the entry is no longer at ``last``."""
        if self._request is not None:
            reply = await self._raw(self._subject_prefix + key, value, write_headers(last, None))
            return written(reply, RegistryUnavailable, "registry write")
        try:
            return await self._registry.update(key, value, last=last)
        except (KeyWrongLastSequenceError, JetStreamError) as exc:
            if _conflict(exc):
                return None
            raise RegistryUnavailable(str(exc)) from exc
        except (NatsError, TimeoutError) as exc:
            raise RegistryUnavailable(str(exc) or type(exc).__name__) from exc

    async def _raw(self, subject: str, payload: bytes, headers: bytes | None) -> RawReply:
        assert self._request is not None
        try:
            return await self._request(subject, payload, headers)
        except Exception as exc:  # the request's own failure type is its owner's
            raise RegistryUnavailable(str(exc) or type(exc).__name__) from exc

    async def _cas(self, user: str, change: Callable[[UserEntry], Admitted | Refused],
                   guess: bool = False) -> Admitted | Refused:
        """Apply ``change`` by compare-and-set. It starts from the entry this process last
        wrote, else (``guess``) from an empty one, i.e. a create; else from a read. A refusal
        is re-decided on the leader's copy unless that is what it was decided on."""
        key = registry_key(user)
        based: tuple[UserEntry, int | None] | None = self._known.get(user)
        if based is None and not guess:
            based = await self._read(user)
        fresh = not guess and user not in self._known  # decided on a read, not a guess
        leader = False
        for attempt in range(CAS_ATTEMPTS):
            entry, revision = based if based is not None else (UserEntry(), None)
            result = change(entry)
            if isinstance(result, Refused):
                if leader:
                    return result
                based, fresh, leader = await self._read(user, leader=True), True, True
                continue
            try:
                written = await self._write(key, result.entry.encode(), revision or 0)
            except RegistryUnavailable:
                self._known.forget(user)
                raise
            if written is None:
                self._known.forget(user)
                if fresh:  # lost a race on what was read: back off before the next read
                    await asyncio.sleep(CAS_RACE.delay(attempt, random.random()))
                based, fresh, leader = await self._read(user), True, False
                continue
            self._known.put(user, (result.entry, written))
            return result
        raise RegistryUnavailable("registry entry kept changing")

    async def close(self) -> None:
        if self._mux is not None:
            self._mux.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def allow_direct(js: JetStreamContext, stream: str) -> None:
    """Turn on direct gets for a bucket created before they were asked for."""
    info = await js.stream_info(stream)
    if not info.config.allow_direct:
        info.config.allow_direct = True
        await js.update_stream(info.config)


def _conflict(exc: Exception) -> bool:
    """Whether a failed write lost a compare-and-set race (retry) rather than failed."""
    if isinstance(exc, KeyWrongLastSequenceError):
        return True
    return "wrong last sequence" in str(exc) or "key exists" in str(exc)


def _boot_of(value: bytes) -> str:
    """The boot a liveness key holds; ``""`` for a gateway that predates boots (``b"1"``)."""
    text = value.decode(errors="replace")
    return "" if text == "1" else text
