"""The presence store in NATS KV (:class:`presence.store.PresenceStore`): what survives a
replica restart and what every replica follows.

One bucket, ``<prefix>-presence`` (history 1, per-key TTLs):

- ``c.<gateway>.<boot>.<conn>``: a socket's latest record. Written by compare-and-set and only
  when newer (by the gateway's per-socket sequence), so two replicas storing records of one
  socket concurrently cannot put an older one back. A closed socket's record is a tombstone
  that expires after ``tombstone_ttl``.
- ``t.<room>.<user>``: the latest typing notice, expiring soon after the typing TTL.
- ``g.<gateway>``: the gateway's latest boot notice; a newer boot closes the old boot's sockets.
- ``r.<replica>``: a replica's liveness, expiring ``replica_ttl`` after its last refresh.

A TTL is only ever put on keys of this history-1 bucket, so an expiry never brings an older
revision back (``nats-notes.md``), and the marker TTL is the 1 s floor so no TTL is raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator

from nats.errors import Error as NatsError
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

from presence.store import ALIVE, BYE, LEAVE_TTL_S, Change, ttl_seconds
from shared.backoff import CAS_RACE
from shared.kv_write import RawRequest, write_headers, written
from shared.light_client import LightClient
from shared.natsconn import key_value
from shared.presence_wire import GatewayBoot, SocketRecord, TypingNotice, decode, encode
from shared.recent import Recent
from shared.request_mux import RequestMux
from shared.subjects import (
    Subjects,
    decode_token,
    kv_subject_prefix,
    presence_boot_key,
    presence_instance_key,
    presence_record_key,
    presence_replica_key,
    presence_typing_key,
)

CAS_ATTEMPTS = 20
WRITE_TIMEOUT_S = 5.0
KNOWN_MAX = 200_000
"""Record keys whose last write (this replica's own) is remembered, so the next write of the
same socket needs no read."""


class StoreUnavailable(NatsError):
    """A write NATS did not acknowledge (a NATS error, so callers treat it as one)."""


class NatsPresenceStore:
    def __init__(self, kv: KeyValue, bucket: str, tombstone_ttl: float, typing_ttl: float,
                 mux: RequestMux) -> None:
        self._mux = mux
        self._request: RawRequest = mux.request
        self._kv = kv
        self._prefix = kv_subject_prefix(bucket)
        self.tombstone_ttl = tombstone_ttl
        self.typing_ttl = typing_ttl
        self._known: Recent[str, tuple[int, int]] = Recent(KNOWN_MAX)
        """Record key → (record seq, revision) of this replica's own last write there; dropped
        as soon as the bucket shows the key changed otherwise."""

    @classmethod
    async def open(cls, nc: LightClient, prefix: str, replicas: int, tombstone_ttl: float,
                   typing_ttl: float) -> NatsPresenceStore:
        """Writes are raw requests through a light request mux: nats-py's JetStream publish
        built a header dict, a future, a timer and a ``Msg`` per write."""
        bucket = Subjects(prefix).presence_bucket()
        kv = await key_value(nc.jetstream(timeout=WRITE_TIMEOUT_S), KeyValueConfig(
            bucket=bucket, history=1, replicas=replicas, storage=StorageType.FILE,
            limit_marker_ttl=1.0))
        mux = RequestMux(nc, WRITE_TIMEOUT_S, StoreUnavailable)
        await mux.start()
        return cls(kv, bucket, tombstone_ttl, typing_ttl, mux)

    def close(self) -> None:
        self._mux.close()

    # --- writes ---------------------------------------------------------------------------

    async def store_record(self, record: SocketRecord) -> bool:
        """Store ``record`` unless a newer one of the same socket is there. ``False`` when
        it was stale. The first attempt reads nothing: it expects the revision this replica
        last wrote there (or none, for a new socket), and only a conflict costs a read."""
        key = record_key(record.gateway, record.boot, record.conn)
        ttl = None if record.alive else ttl_seconds(self.tombstone_ttl)
        known = self._known.get(key)
        if known is not None and known[0] >= record.seq:
            return False
        revision: int | None = known[1] if known is not None else 0  # None: read it
        for attempt in range(CAS_ATTEMPTS):
            if revision is None:
                stored, revision = await self._read(key)
                if stored is not None and stored.seq >= record.seq:
                    return False
            seq = await self._write(key, encode(record), revision, ttl)
            if seq is None:
                self._known.forget(key)
                revision = None
                if attempt:
                    await asyncio.sleep(cas_backoff(attempt))
                continue
            self._known.put(key, (record.seq, seq))
            return True
        return False

    async def _write(self, key: str, value: bytes, last: int | None,
                     ttl: float | None) -> int | None:
        """Write ``key`` (expected at revision ``last``, unless ``None``): its new revision,
        or ``None`` when it was no longer at ``last``."""
        headers = write_headers(last, None if ttl is None else int(ttl))
        reply = await self._request(self._prefix + key, value, headers)
        return written(reply, StoreUnavailable, "presence write")

    async def store_typing(self, notice: TypingNotice) -> None:
        key = presence_typing_key(notice.room, notice.user)
        await self._write(key, encode(notice), None, ttl_seconds(2 * self.typing_ttl))

    async def store_boot(self, boot: GatewayBoot) -> None:
        await self._kv.put(presence_boot_key(boot.gateway), encode(boot))

    async def beat(self, replica: str, ttl: float) -> None:
        await self._write(presence_replica_key(replica), ALIVE, None, ttl_seconds(ttl))

    async def leave(self, replica: str) -> None:
        """A clean exit: ``bye`` tells the others nothing needs announcing again."""
        await self._write(presence_replica_key(replica), BYE, None, ttl_seconds(LEAVE_TTL_S))

    async def drop_instance(self, gateway: str, boot: str) -> int:
        """Delete the records of one dead gateway run; returns how many."""
        keys = await self._keys(presence_instance_key(gateway, boot) + ".*")
        for key in keys:
            with contextlib.suppress(KeyNotFoundError):
                await self._kv.purge(key)
        return len(keys)

    async def _keys(self, pattern: str) -> list[str]:
        """The present keys matching the subject ``pattern`` (nats-py's ``keys(filters=)``
        matches its filters as substrings, so a wildcard filter never matched anything)."""
        watcher = await self._kv.watch(pattern, ignore_deletes=True, meta_only=True)
        keys: list[str] = []
        try:
            async for entry in watcher:
                if entry is None:
                    break
                keys.append(entry.key)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]
        return keys

    async def _read(self, key: str) -> tuple[SocketRecord | None, int]:
        try:
            entry = await self._kv.get(key)
        except KeyDeletedError as exc:
            return None, exc.entry.revision if exc.entry is not None else 0
        except KeyNotFoundError:
            return None, 0
        if entry.value is None:  # an expiry marker (nats-py returns it as an entry)
            return None, entry.revision or 0
        found = decode(entry.value)
        return (found if isinstance(found, SocketRecord) else None), entry.revision or 0

    # --- following ------------------------------------------------------------------------

    async def follow(self) -> AsyncIterator[Change | None]:
        """Every key's current value, then ``None`` (caught up), then every change."""
        watcher = await self._kv.watchall()
        try:
            async for entry in watcher:
                if entry is None:
                    yield None
                    continue
                change = parse_key(entry.key)
                if change is None:
                    continue
                deleted = entry.operation in ("DEL", "PURGE") or not entry.value
                known = self._known.get(entry.key)
                if known is not None and (deleted or known[1] != entry.revision):
                    self._known.forget(entry.key)  # changed by another writer, or expired
                yield Change(change[0], change[1], None if deleted else entry.value)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]


record_key = presence_record_key


def parse_key(key: str) -> tuple[str, tuple[str, ...]] | None:
    """``(kind, decoded parts)`` of a bucket key, ``None`` for a key that is not ours."""
    kind, _, rest = key.partition(".")
    arity = {"c": 3, "t": 2, "g": 1, "r": 1}.get(kind)
    tokens = rest.split(".") if rest else []
    if arity is None or len(tokens) != arity:
        return None
    try:
        return kind, tuple(decode_token(token) for token in tokens)
    except ValueError:
        return None


def cas_backoff(attempt: int) -> float:
    """How long a writer that lost a compare-and-set race waits before it reads again: the
    cluster's compare-and-set pause (:data:`shared.backoff.CAS_RACE`), drawn afresh."""
    return CAS_RACE.delay(attempt, random.random())
