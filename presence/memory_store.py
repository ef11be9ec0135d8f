"""The presence store in memory (:class:`presence.store.PresenceStore`), for tests and for a
single process: one dict of keys, one log of changes every follower reads in the same order.

Time is injected: TTLs count on ``clock`` and keys expire when :meth:`expire` runs (every
write runs it too), so a test moves a fake clock and calls :meth:`expire` where the NATS store
would have waited for the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from presence.store import ALIVE, BYE, LEAVE_TTL_S, Change, ttl_seconds
from shared.presence_wire import GatewayBoot, SocketRecord, TypingNotice, decode, encode

Key = tuple[str, tuple[str, ...]]


class MemoryPresenceStore:
    def __init__(self, clock: Callable[[], float], tombstone_ttl: float,
                 typing_ttl: float) -> None:
        self.tombstone_ttl = tombstone_ttl
        self.typing_ttl = typing_ttl
        self._clock = clock
        self._entries: dict[Key, tuple[bytes, float | None]] = {}  # value, expires at
        self._log: list[Change] = []
        self._followers: set[asyncio.Event] = set()

    # --- writes ---------------------------------------------------------------------------

    async def store_record(self, record: SocketRecord) -> bool:
        key: Key = ("c", (record.gateway, record.boot, record.conn))
        self.expire()
        stored = self._entries.get(key)
        found = decode(stored[0]) if stored is not None else None
        if isinstance(found, SocketRecord) and found.seq >= record.seq:
            return False
        ttl = None if record.alive else self.tombstone_ttl
        self._put(key, encode(record), ttl)
        return True

    async def store_typing(self, notice: TypingNotice) -> None:
        self.expire()
        self._put(("t", (notice.room, notice.user)), encode(notice), 2 * self.typing_ttl)

    async def store_boot(self, boot: GatewayBoot) -> None:
        self.expire()
        self._put(("g", (boot.gateway,)), encode(boot), None)

    async def beat(self, replica: str, ttl: float) -> None:
        self.expire()
        self._put(("r", (replica,)), ALIVE, ttl)

    async def leave(self, replica: str) -> None:
        self.expire()
        self._put(("r", (replica,)), BYE, LEAVE_TTL_S)

    async def drop_instance(self, gateway: str, boot: str) -> int:
        self.expire()
        run = [key for key in self._entries if key[0] == "c" and key[1][:2] == (gateway, boot)]
        for key in run:
            self._remove(key)
        return len(run)

    def expire(self) -> int:
        """Remove every key whose TTL has run out at ``clock()``; how many."""
        now = self._clock()
        due = [key for key, (_, at) in self._entries.items() if at is not None and at <= now]
        for key in due:
            self._remove(key)
        return len(due)

    def _put(self, key: Key, value: bytes, ttl: float | None) -> None:
        expires = None if ttl is None else self._clock() + ttl_seconds(ttl)
        self._entries[key] = (value, expires)
        self._append(Change(key[0], key[1], value))

    def _remove(self, key: Key) -> None:
        del self._entries[key]
        self._append(Change(key[0], key[1], None))

    def _append(self, change: Change) -> None:
        self._log.append(change)
        for wake in self._followers:
            wake.set()

    # --- following ------------------------------------------------------------------------

    async def follow(self) -> AsyncIterator[Change | None]:
        self.expire()
        current = [Change(kind, parts, value)
                   for (kind, parts), (value, _) in self._entries.items()]
        seen = len(self._log)
        wake = asyncio.Event()
        self._followers.add(wake)
        try:
            for change in current:
                yield change
            yield None
            while True:
                while seen < len(self._log):
                    seen += 1
                    yield self._log[seen - 1]
                wake.clear()
                if seen == len(self._log):
                    await wake.wait()
        finally:
            self._followers.discard(wake)
