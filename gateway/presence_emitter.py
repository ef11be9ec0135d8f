"""The gateway's side of presence: socket records and typing notices into the work queue.

:class:`PendingPresence` is the pure part. It keeps at most one pending record per socket and
one typing notice per (room, user) — a burst of joins, a reconnect storm or a keystroke stream
becomes one notice each — so what waits for NATS is bounded by the sockets this gateway holds.
A socket that closes before its first record went out is dropped: presence never heard of it.

:class:`PresenceEmitter` is the shell: it publishes what is pending to the JetStream work
queue (acknowledged, so nothing is lost when a presence replica dies), puts back what failed
unless something newer replaced it, and backs off while NATS is away. Nothing here ever waits
on a socket, and no socket waits on it. Notices gather for ``LINGER_S`` before each publish
(unless a full batch is waiting), and what piled up goes out packed, many notices per message
(up to ``PACK_BYTES``): a burst of opens and closes costs a few round trips, not two per
socket, and a socket gone within the linger is never sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.client import JetStreamContext
from nats.js.errors import Error as JetStreamError

from gateway.actions import NamespaceSocket
from shared.backoff import Backoff
from shared.presence_wire import (
    GatewayBoot,
    Notice,
    SocketRecord,
    TypingNotice,
    encode,
    pack,
    room_key,
)
from shared.subjects import USER_ROOM_PREFIX

log = logging.getLogger(__name__)

BATCH = 512
LINGER_S = 0.05
"""How long notices gather before a publish that is not a full batch. Presence is debounced
anyway (an offline waits out a grace period), so 50 ms more before an online or a join is
announced is not seen; in exchange a socket that opens and closes within it costs presence
nothing (neither record is sent), and a burst of opens goes out in one message."""
PACK_BYTES = 256 * 1024  # well under NATS's default max_payload (1 MB)
RETRY_BACKOFF = Backoff(base=0.05, cap=2.0)
QUERY_TIMEOUT_S = 2.0


class PendingPresence:
    """Sequence numbers come from one counter per gateway run, not per socket: a socket that
    recovers on the gateway it left keeps its id, and its new records must still be newer
    than the closing one presence already stored."""

    def __init__(self, gateway: str, boot: str) -> None:
        self.gateway = gateway
        self.boot = boot
        self._seq = 0
        self._sent: set[str] = set()
        self._records: dict[str, SocketRecord] = {}
        self._typing: dict[tuple[str, str], TypingNotice] = {}
        self._boot: GatewayBoot | None = None

    def __len__(self) -> int:
        return len(self._records) + len(self._typing) + (self._boot is not None)

    def boot_notice(self, now: float) -> None:
        self._boot = GatewayBoot(self.gateway, self.boot, now)

    def socket(self, conn: str, user: str, rooms: Iterable[str], alive: bool,
               now: float) -> None:
        if not alive and conn not in self._sent:
            self._records.pop(conn, None)
            return
        self._seq += 1
        self._records[conn] = SocketRecord(self.gateway, self.boot, conn, user,
                                           frozenset(rooms), alive, self._seq, now)

    def typing(self, room: str, user: str, active: bool, now: float) -> None:
        self._typing[(room, user)] = TypingNotice(room, user, active, now)

    def take(self, limit: int = BATCH) -> list[Notice]:
        """Up to ``limit`` notices: the boot first, then records, then typing (so a join
        usually lands before the typing that needs it)."""
        taken: list[Notice] = []
        if self._boot is not None:
            taken.append(self._boot)
            self._boot = None
        while self._records and len(taken) < limit:
            conn = next(iter(self._records))
            record = self._records.pop(conn)
            if record.alive:
                self._sent.add(conn)
            else:
                self._sent.discard(conn)
            taken.append(record)
        while self._typing and len(taken) < limit:
            taken.append(self._typing.pop(next(iter(self._typing))))
        return taken

    def failed(self, notices: Iterable[Notice]) -> None:
        """Put back what was not stored, unless something newer took its place."""
        for notice in notices:
            if isinstance(notice, SocketRecord):
                current = self._records.get(notice.conn)
                if current is None or current.seq < notice.seq:
                    self._records[notice.conn] = notice
            elif isinstance(notice, TypingNotice):
                self._typing.setdefault((notice.room, notice.user), notice)
            elif self._boot is None:
                self._boot = notice


def packed(notices: list[Notice], limit: int = PACK_BYTES) -> list[tuple[list[Notice], bytes]]:
    """The notices in order, as work-queue messages of at most ``limit`` bytes each (a notice
    bigger than that alone), each with the notices it carries."""
    packs: list[tuple[list[Notice], bytes]] = []
    notices_of: list[Notice] = []
    encoded: list[bytes] = []
    size = 1  # the brackets, less the one comma fewer than notices
    for notice in notices:
        raw = encode(notice)
        if encoded and size + len(raw) + 1 > limit:
            packs.append((notices_of, pack(encoded)))
            notices_of, encoded, size = [], [], 1
        notices_of.append(notice)
        encoded.append(raw)
        size += len(raw) + 1
    if encoded:
        packs.append((notices_of, pack(encoded)))
    return packs


def presence_rooms(socket: NamespaceSocket) -> list[str]:
    """The rooms presence hears about: every room but the socket's private user room."""
    return [room_key(socket.nsp, room) for room in socket.rooms
            if not room.startswith(USER_ROOM_PREFIX)]


Request = Callable[[str, bytes, float], Awaitable[Msg]]


class PresenceEmitter:
    """Also the gateway's way to ask presence for a room's members (``room:presence``)."""

    def __init__(self, js: JetStreamContext, subject: str, gateway: str, boot: str,
                 namespaces: frozenset[str], request: Request | None = None,
                 query_subject: str = "", clock: Callable[[], float] = time.time) -> None:
        self.namespaces = namespaces
        self._request = request
        self._query_subject = query_subject
        self.pending = PendingPresence(gateway, boot)
        self._js = js
        self._subject = subject
        self._clock = clock
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.pending.boot_notice(self._clock())
        self._task = asyncio.get_running_loop().create_task(self._run())
        self._kick()

    def socket(self, socket: NamespaceSocket, alive: bool) -> None:
        if socket.nsp not in self.namespaces:
            return
        rooms = presence_rooms(socket) if alive else []
        self.pending.socket(socket.sid, socket.identity.sub, rooms, alive, self._clock())
        self._kick()

    def resync(self, sockets: Iterable[NamespaceSocket]) -> None:
        """Send every socket's record again: after this gateway's liveness key lapsed,
        presence closed its sockets, and fresh records (newer stamps) bring them back."""
        for socket in sockets:
            self.socket(socket, True)

    def typing(self, socket: NamespaceSocket, room: str, active: bool) -> None:
        self.pending.typing(room_key(socket.nsp, room), socket.identity.sub, active,
                            self._clock())
        self._kick()

    async def members(self, nsp: str, room: str) -> dict[str, Any] | None:
        """The presence service's answer, or ``None`` when no replica answered in time."""
        if self._request is None:
            return None
        try:
            reply = await self._request(self._query_subject,
                                        orjson.dumps({"namespace": nsp, "room": room}),
                                        QUERY_TIMEOUT_S)
            answer = orjson.loads(reply.data)
        except (NatsError, TimeoutError, orjson.JSONDecodeError):
            return None
        return answer if isinstance(answer, dict) else None

    def _kick(self) -> None:
        self._idle.clear()
        self._wake.set()

    async def _run(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            while len(self.pending):
                if len(self.pending) < BATCH:
                    await asyncio.sleep(LINGER_S)
                packs = packed(self.pending.take())
                results = await asyncio.gather(
                    *(self._js.publish(self._subject, body) for _, body in packs),
                    return_exceptions=True)
                lost = [notice for (notices, _), result in zip(packs, results, strict=True)
                        if isinstance(result, BaseException) for notice in notices]
                for result in results:
                    if isinstance(result, BaseException) and not isinstance(
                            result, NatsError | JetStreamError | TimeoutError):
                        log.error("presence notice not stored: %r", result)
                if lost:
                    self.pending.failed(lost)
                    delay = RETRY_BACKOFF.delay(failures)
                    failures += 1
                    log.warning("%d presence notices not stored; retrying in %.2fs",
                                len(lost), delay)
                    await asyncio.sleep(delay)
                else:
                    failures = 0
            self._idle.set()

    async def close(self, grace: float = 2.0) -> None:
        """Send what is pending (a draining gateway's closes) for up to ``grace`` s, then
        stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
