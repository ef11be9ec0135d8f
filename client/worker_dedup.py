"""De-duplication of event requests by their idempotency key.

A client that retries (the Python SDK after an ack timeout, or any client after a reconnect)
sends the same ``id`` again; a worker that must not run a handler twice answers the retry
with the first answer instead. The first successful reply is kept, reduced to what is safe to
repeat (:func:`repeat_reply`: the ack, joins, leaves and session data, never a publish, emit
or disconnect a second time), in a :class:`ReplyStore`:

- :class:`MemoryReplyStore` keeps replies in this process (an LRU with a time window). It only
  catches retries that land on the same replica: with several replicas behind the queue group,
  a retry may go to another one.
- :class:`KvReplyStore` keeps them in a NATS KV bucket whose TTL is the window, shared by every
  replica (one KV read per request, one write per first answer).

Retries that arrive while the first attempt still runs in this process wait for it.
Failed answers are not kept: a retry after ``internal`` or a :class:`~client.worker.HookError`
runs the handler again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from nats.aio.client import Client
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from client.worker_wire import dumps, namespace_token
from shared.protocol.names import encode_id

log = logging.getLogger("switchboard.worker")

REPEATED_KEYS = ("ok", "ack", "join", "leave", "data")
DEFAULT_WINDOW_S = 600.0
DEFAULT_MAX_ENTRIES = 10_000

Reply = dict[str, Any]


class ReplyStore(Protocol):
    """Where first replies wait for retries: bytes by key, forgotten after a window."""

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, reply: bytes) -> None: ...


def dedup_key(nsp: str, event: str, request_id: str) -> str:
    """One key per (namespace, event, id), valid as a KV key (dot-separated tokens)."""
    return f"{namespace_token(nsp)}.{encode_id(event)}.{encode_id(request_id)}"


def repeat_reply(reply: Reply) -> Reply:
    """What a retry is answered with: the state the first reply set, and its ack."""
    return {key: reply[key] for key in REPEATED_KEYS if key in reply}


class MemoryReplyStore:
    """The last ``max_entries`` replies of this process, each for ``window_s`` seconds."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES,
                 window_s: float = DEFAULT_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1 or window_s <= 0:
            raise ValueError("max_entries and window_s must be positive")
        self.max_entries = max_entries
        self.window_s = window_s
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    async def put(self, key: str, reply: bytes) -> None:
        self._entries[key] = (self._clock() + self.window_s, reply)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class KvReplyStore:
    """Replies in a NATS KV bucket (shared by every replica); the bucket's TTL is the window."""

    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext, bucket: str = "sb-hook-replies",
                   window_s: float = DEFAULT_WINDOW_S) -> KvReplyStore:
        """The bucket, created with a TTL of ``window_s`` if it does not exist yet."""
        try:
            return cls(await js.key_value(bucket))
        except NotFoundError:
            return cls(await js.create_key_value(bucket=bucket, ttl=window_s))

    async def get(self, key: str) -> bytes | None:
        try:
            entry = await self._kv.get(key)
        except NotFoundError:
            return None
        value: bytes | None = entry.value
        return value

    async def put(self, key: str, reply: bytes) -> None:
        await self._kv.put(key, reply)


StoreOpener = Callable[[Client], Awaitable[ReplyStore]]
"""Opens a store on the worker's connection when it starts (see :func:`kv_replies`)."""


def kv_replies(bucket: str = "sb-hook-replies",
               window_s: float = DEFAULT_WINDOW_S) -> StoreOpener:
    """A :class:`KvReplyStore` on ``bucket``, opened (and created) when the worker starts."""
    async def open_store(nc: Client) -> ReplyStore:
        return await KvReplyStore.open(nc.jetstream(), bucket, window_s)
    return open_store


class Deduplicator:
    """Runs a request's handler once per key; retries get :func:`repeat_reply` of the first.

    A store that fails (NATS away) costs the guarantee, not the request: it is logged and the
    handler runs."""

    def __init__(self, store: ReplyStore) -> None:
        self.store = store
        self._running: dict[str, asyncio.Future[Reply]] = {}

    async def once(self, key: str, compute: Callable[[], Awaitable[Reply]]) -> Reply:
        running = self._running.get(key)
        if running is not None:
            first = await _outcome(running)
            if first.get("ok") is True:
                return repeat_reply(first)
        cached = await self._lookup(key)
        if cached is not None:
            return cached
        done: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._running[key] = done
        try:
            reply = await compute()
            done.set_result(reply)
        finally:
            if self._running.get(key) is done:
                del self._running[key]
            if not done.done():
                done.cancel()
        if reply.get("ok") is True:
            await self._keep(key, reply)
        return reply

    async def _lookup(self, key: str) -> Reply | None:
        try:
            raw = await self.store.get(key)
        except Exception:
            log.exception("de-duplication store: get failed; running the handler")
            return None
        if raw is None:
            return None
        reply: Reply = orjson.loads(raw)
        return reply

    async def _keep(self, key: str, reply: Reply) -> None:
        try:
            await self.store.put(key, dumps(repeat_reply(reply)))
        except Exception:
            log.exception("de-duplication store: put failed; a retry would run again")


async def _outcome(running: asyncio.Future[Reply]) -> Reply:
    """The first attempt's reply, or ``{}`` if it ended without one."""
    try:
        return await asyncio.shield(running)
    except asyncio.CancelledError:
        if not running.cancelled():
            raise  # this waiter itself is being cancelled
        return {}
