"""Durable namespaces' socket lifecycle: open a socket or recover it from its recovery
record, join with catch-up, leave, history, and the lease that keeps live records recoverable.

Everything here is I/O against the broker's log and the recovery store, in the order that
makes delivery exactly-once from the client's view: a member is registered (on hold) before
positions are read, the recovery record is saved before a join is acked and before a
recovered socket's CONNECT reply, and a recovered socket's replay is read and sized before
that reply but written right after it, ahead of anything live (:meth:`DurableSockets.resume`:
socket.io-client keeps events that arrive before its CONNECT in a buffer a failed attempt does
not empty, while its offset stays put, so a replay written first and cut off before the reply
would be emitted twice by the next attempt). (The
connection's protocol state is :class:`gateway.session.Session`; "recovery" names what
outlives a connection.) What the results mean for the socket, the core decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from gateway.actions import JoinFailure, NamespaceSocket, Recovered, Restore
from gateway.broker import BrokerUnavailable
from gateway.delivery import Member
from gateway.fanout import Catchup, Fanout, TooLarge
from gateway.recovery import RecoveryRecord, replay_ranges, trimmed
from gateway.recovery_store import RecoveryStore
from shared.metrics import GatewayMetrics
from shared.namespaces import INBOX_NAMESPACE
from shared.protocol.offsets import Offset, parse_offset
from shared.room_log import inbox_message_id
from shared.room_log.paging import Page, read_page
from shared.subjects import user_room

log = logging.getLogger(__name__)

LEASE_BATCH = 256


class JoinFailed(Exception):
    """A join the log could not carry out; the session core words the answer."""

    def __init__(self, why: JoinFailure) -> None:
        super().__init__(why.value)
        self.why = why


@dataclass(frozen=True, slots=True)
class Resumed:
    """A recovered session, saved and in its rooms (on hold), with its replay read: the
    shell sends the CONNECT reply, then :meth:`DurableSockets.resume` writes the rest."""

    recovered: Recovered
    catchup: Catchup


class DurableSockets:
    """The durable namespaces' sockets of one gateway, with their live recovery records."""

    def __init__(self, fanout: Fanout, store: RecoveryStore | None, metrics: GatewayMetrics,
                 budget: int, lease_s: float, window_s: float) -> None:
        self._fanout = fanout
        self._store = store
        self._metrics = metrics
        self._budget = budget
        self._lease_s = lease_s
        self._window_s = window_s
        self._live: dict[str, tuple[NamespaceSocket, RecoveryRecord]] = {}
        self._lease_task: asyncio.Task[None] | None = None

    # --- open / recover -------------------------------------------------------------------

    async def open(self, socket: NamespaceSocket, member: Member,
                   restore: Restore | None) -> Resumed | None:
        """Join the socket's initial rooms and save its recovery record (or recover the one
        ``restore`` names). Returns what was recovered, for the core to give the socket, and
        the replay to :meth:`resume` once the CONNECT reply is queued."""
        if restore is not None and socket.pid is not None:
            recovered = await self._recover(socket, member, restore)
            if recovered is not None:
                log.info("session %s recovered", restore.pid[:6])
                self._metrics.recoveries.labels(socket.nsp, "recovered").inc()
                return recovered
            self._metrics.recoveries.labels(socket.nsp, "fresh").inc()
        record = RecoveryRecord(socket.identity.sub, socket.nsp, socket.sid)
        for room in list(socket.rooms):
            record.rooms[room] = await self._fanout.join((socket.nsp, room), member)
        await self._save(socket, socket.pid, record)
        if socket.nsp == INBOX_NAMESPACE:
            await self._deliver_inbox(socket.identity.sub)
        return None

    async def _deliver_inbox(self, user: str) -> None:
        """What was sent while the user was offline moves into the user's room log, in order,
        once (the log's message ids de-duplicate two tabs connecting at the same moment), and
        reaches the socket like any live message."""
        broker = self._fanout.broker
        try:
            kept = await broker.take_inbox(user)
            for message in kept:
                await broker.publish(INBOX_NAMESPACE, user_room(user), message.body,
                                     inbox_message_id(user, message.seq), logged=True)
            if kept:
                await broker.clear_inbox(user, kept[-1].seq)
        except BrokerUnavailable:
            log.warning("offline inbox not delivered now; it stays for the next connect")

    def resume(self, member: Member, resumed: Resumed) -> None:
        """Queue a recovered socket's replay and then what arrived live meanwhile, in the
        loop pass that queued its CONNECT reply (so one write carries them all)."""
        self._fanout.write_replay(member, resumed.catchup)
        member.release()

    async def _recover(self, socket: NamespaceSocket, member: Member,
                       restore: Restore) -> Resumed | None:
        store = self._store
        if store is None:
            return None
        offset = parse_offset(restore.offset) if restore.offset is not None else None
        if restore.offset is not None and offset is None:
            return None
        try:
            record = await store.get(socket.nsp, restore.pid)
        except BrokerUnavailable:
            return None  # a fresh record then, not a socket without one
        if record is None or record.user != socket.identity.sub:
            return None
        if not record.recoverable(time.time()):
            return None
        member.hold = []
        joined: list[str] = []
        try:
            ends = {}
            for room in record.rooms:
                ends[room] = await self._fanout.join((socket.nsp, room), member)
                joined.append(room)
            ranges = replay_ranges(record, offset, ends)
            if trimmed(ranges, await self._fanout.broker.first_seq(socket.nsp)):
                raise TooLarge("history trimmed")
            catchup = await self._fanout.read_replay(member, socket.nsp, ranges,
                                                     offset or Offset(0), self._budget)
            await self._save(socket, restore.pid, record)
        except (TooLarge, BrokerUnavailable) as exc:
            log.info("session %s not recovered: %s", restore.pid[:6], type(exc).__name__)
            if self._live.get(restore.pid, (None,))[0] is socket:
                del self._live[restore.pid]
            for room in joined:
                await self._fanout.leave((socket.nsp, room), member)
            member.hold = None
            return None
        return Resumed(Recovered(restore.pid, record.sid, frozenset(record.rooms)), catchup)

    # --- rooms ------------------------------------------------------------------------------

    async def join(self, socket: NamespaceSocket, member: Member, room: str,
                   since: int | None) -> None:
        """Join; with ``since``, replay the room after it first. Raises :class:`JoinFailed`.
        The core adds the room to the socket once this returns."""
        key = (socket.nsp, room)
        if since is not None:
            member.hold = member.hold if member.hold is not None else []
        try:
            end = await self._fanout.join(key, member)
        except BrokerUnavailable as exc:
            member.release()
            raise JoinFailed(JoinFailure.UNAVAILABLE) from exc
        start = end if since is None else min(since, end)
        try:
            if since is not None and end > since:
                claim = self._fanout.claim(member, socket.nsp)
                await self._fanout.replay(member, socket.nsp, {room: (since, end)}, claim,
                                          self._budget - member.outbox.queued)
            await self._update(socket, room, start)
        except (TooLarge, BrokerUnavailable) as exc:
            await self._fanout.leave(key, member)
            member.release()
            if isinstance(exc, TooLarge):
                raise JoinFailed(JoinFailure.BACKLOG_TOO_LARGE) from exc
            raise JoinFailed(JoinFailure.UNAVAILABLE) from exc
        member.release()

    async def leave(self, socket: NamespaceSocket, room: str) -> None:
        entry = self._live.get(socket.pid or "")
        if entry is not None:
            entry[1].rooms.pop(room, None)
            with contextlib.suppress(BrokerUnavailable):
                await self._put(socket.pid, entry[1])

    async def closed(self, socket: NamespaceSocket, final: bool) -> None:
        """The socket is gone. A transport close keeps the session for the recovery window;
        a DISCONNECT (the client left, or was kicked) ends it."""
        if socket.pid is None:
            return
        entry = self._live.pop(socket.pid, None)
        if final and self._store is not None:
            await self._store.delete(socket.nsp, socket.pid)
        elif entry is not None and self._store is not None:
            record = entry[1]
            record.until = time.time() + self._window_s
            self._store.put_later(socket.pid, record)

    def forget(self, socket: NamespaceSocket) -> None:
        """The socket moved to another gateway, which keeps its record live from now on."""
        self._live.pop(socket.pid or "", None)

    # --- history --------------------------------------------------------------------------

    async def history(self, nsp: str, room: str, since: int | None, before: int | None,
                      limit: int) -> Page | None:
        """Up to ``limit`` messages after ``since`` (oldest first) or before ``before`` (the
        newest of those, oldest first), read in batches; ``None`` when nothing of the range
        is left (:func:`shared.room_log.paging.read_page`). The core words the answer."""
        return await read_page(self._fanout.broker, nsp, room, since, before, limit)

    # --- records and the lease ------------------------------------------------------------

    async def _update(self, socket: NamespaceSocket, room: str, joined_at: int) -> None:
        entry = self._live.get(socket.pid or "")
        if entry is not None:
            entry[1].rooms.setdefault(room, joined_at)
            await self._put(socket.pid, entry[1])

    async def _save(self, socket: NamespaceSocket, pid: str | None,
                    record: RecoveryRecord) -> None:
        """Keep ``record`` live under ``pid`` (the socket's own, or the one it recovers)."""
        if pid is None:
            return
        self._live[pid] = (socket, record)
        await self._put(pid, record)
        self._ensure_lease()

    async def _put(self, pid: str | None, record: RecoveryRecord) -> None:
        """Save the live record: recoverable until the next lease refresh could have failed.
        (A dropped one is recoverable for the recovery window from its close.)"""
        if self._store is not None and pid is not None:
            record.until = time.time() + self._window_s + self._lease_s
            await self._store.put(pid, record)

    def _ensure_lease(self) -> None:
        if self._lease_task is None and self._store is not None:
            self._lease_task = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        """Re-put every live session before the bucket's TTL could expire it, ``LEASE_BATCH``
        puts in flight at a time (one round trip each, awaited one after the other, would take
        a gateway of 10,000 sessions seconds per lease)."""
        while True:
            await asyncio.sleep(self._lease_s)
            live = [(pid, record) for pid, (_, record) in self._live.items()]
            for start in range(0, len(live), LEASE_BATCH):
                batch = live[start:start + LEASE_BATCH]
                results = await asyncio.gather(
                    *(self._put(pid, record) for pid, record in batch),
                    return_exceptions=True)
                failed = [r for r in results if isinstance(r, BaseException)]
                for failure in failed:
                    if not isinstance(failure, BrokerUnavailable):
                        raise failure
                if failed:
                    log.warning("session lease refresh failed; retrying next round")
                    break

    async def close(self) -> None:
        if self._store is not None:
            self._store.close()
        if self._lease_task is not None:
            self._lease_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lease_task
