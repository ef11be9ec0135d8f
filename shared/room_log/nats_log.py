"""The room log and the inbox on NATS JetStream (:mod:`shared.room_log.streams` sets the
streams up).

Reads use batch direct get (nats-py has no API for it): one request, messages until a
``204 EOB`` status. The last sequences of rooms asked about in one loop pass are found by one
``multi_last`` direct get, so a burst of joins costs one round trip, not one per room.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from nats.errors import Error as NatsError
from nats.js.errors import Error as JetStreamError

from shared.light_client import LightClient, header_int
from shared.request_mux import Reply, RequestMux
from shared.room_log import Done, LogUnavailable, PublishResult, Stored
from shared.room_log.paging import BATCH
from shared.room_log.publisher import LogPublisher
from shared.room_log.streams import LogSettings
from shared.subjects import Subjects, direct_get

REQUEST_TIMEOUT_S = 2.0
READ_BATCH = BATCH  # messages per direct get; history pages size their windows to it
PROBE_BATCH = 256  # rooms per multi_last request
_SUBJECT = b"\r\nNats-Subject: "
_SEQUENCE = b"\r\nNats-Sequence: "
UNLOGGED = PublishResult()


def unavailable(exc: BaseException) -> LogUnavailable:
    return LogUnavailable(str(exc) or type(exc).__name__)


def last_sequences(batches: list[list[Reply]]) -> dict[str, int]:
    """Subject -> last sequence from ``multi_last`` direct gets: each batch is the rooms'
    last messages, then the end-of-batch status (``404``: none of them has any)."""
    found: dict[str, int] = {}
    for replies in batches:
        end = replies[-1].status
        if end not in (b"204", b"404"):
            raise LogUnavailable(f"log probe failed: status {end.decode() or '?'}")
        for reply in replies[:-1]:
            headers = reply.headers or b""
            seq = header_int(headers, _SEQUENCE)
            start = headers.find(_SUBJECT)
            if seq is None or start < 0:
                raise LogUnavailable("log probe: a reply without subject or sequence")
            start += len(_SUBJECT)
            end_of = headers.find(b"\r\n", start)
            found[headers[start:end_of if end_of >= 0 else None].decode()] = seq
    return found


def stored_messages(replies: list[Reply]) -> list[Stored]:
    """The stored messages of one batch direct get, up to its ``204 EOB`` (or ``404``)."""
    if replies[-1].status not in (b"204", b"404"):
        raise LogUnavailable(f"log read failed: status {replies[-1].status.decode()}")
    found: list[Stored] = []
    for reply in replies[:-1]:
        seq = header_int(reply.headers or b"", _SEQUENCE)
        if seq is None:
            raise LogUnavailable("log read failed: a message without its sequence")
        found.append(Stored(seq, reply.data))
    return found


@dataclass(slots=True)
class _Probe:
    """The rooms of one namespace whose last sequence is asked for in one loop pass."""

    rooms: set[str] = field(default_factory=set)
    done: asyncio.Future[dict[str, int]] | None = None


class NatsRoomLog:
    """:class:`~shared.room_log.RoomLog` and :class:`~shared.room_log.Inbox` on one NATS
    connection. An unlogged publish (an ephemeral namespace) goes straight to the room's
    fan-out subject; a logged one to the log subject its stream captures."""

    def __init__(self, nc: LightClient, subjects: Subjects, settings: LogSettings) -> None:
        self._nc = nc
        self._js = nc.jetstream(timeout=REQUEST_TIMEOUT_S)
        self._subjects = subjects
        self._settings = settings
        self.requests = RequestMux(nc, REQUEST_TIMEOUT_S, LogUnavailable)
        self._publisher = LogPublisher(self.requests)
        self._probes: dict[str, _Probe] = {}
        self._firsts: dict[str, asyncio.Future[int]] = {}
        self._asking: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Subscribe the one reply inbox of publish acknowledgements and requests (before any
        :meth:`begin_publish` or read)."""
        await self.requests.start()

    def _logged(self, nsp: str, logged: bool) -> bool:
        return logged and nsp in self._settings.durable

    async def publish(
        self, nsp: str, room: str, body: bytes, msg_id: str | None = None, logged: bool = False
    ) -> PublishResult:
        if not self._nc.is_connected:
            raise LogUnavailable("not connected to NATS")
        try:
            if self._logged(nsp, logged):
                headers = {"Nats-Msg-Id": msg_id} if msg_id else None
                ack = await self._js.publish(self._subjects.log(nsp, room), body,
                                             headers=headers)
                return PublishResult(ack.seq, bool(ack.duplicate))
            await self._nc.publish(self._subjects.fanout(nsp, room), body)
        except (NatsError, JetStreamError, TimeoutError) as exc:
            raise unavailable(exc) from exc
        return UNLOGGED

    def begin_publish(
        self, nsp: str, room: str, body: bytes, msg_id: str | None, logged: bool, done: Done
    ) -> None:
        if self._logged(nsp, logged):
            self._publisher.publish(self._subjects.log(nsp, room), body, msg_id, done)
            return
        self._nc.publish_nowait(self._subjects.fanout(nsp, room), body)
        done(UNLOGGED)

    async def last_seq(self, nsp: str, room: str) -> int:
        """The room's last sequence, asked together with every room probed in this pass."""
        probe = self._probes.get(nsp)
        if probe is None:
            loop = asyncio.get_running_loop()
            probe = self._probes[nsp] = _Probe(done=loop.create_future())
            loop.call_soon(self._send_probe, nsp)
        probe.rooms.add(room)
        assert probe.done is not None
        found = await asyncio.shield(probe.done)
        return found.get(self._subjects.log(nsp, room), 0)

    def _send_probe(self, nsp: str) -> None:
        probe = self._probes.pop(nsp)
        assert probe.done is not None
        subjects = [self._subjects.log(nsp, room) for room in probe.rooms]
        api = direct_get(self._subjects.log_stream(nsp))
        try:
            replies = [self.requests.batch(api, json.dumps(
                {"multi_last": chunk, "batch": len(chunk)}).encode())
                for chunk in (subjects[i:i + PROBE_BATCH]
                              for i in range(0, len(subjects), PROBE_BATCH))]
        except LogUnavailable as exc:
            probe.done.set_exception(exc)
            probe.done.exception()  # the joiners re-raise it
            return
        done = probe.done

        def answered(gathered: asyncio.Future[list[list[Reply]]]) -> None:
            if gathered.cancelled():
                done.cancel()
            elif (exc := gathered.exception()) is not None:
                done.set_exception(exc)
            else:
                try:
                    done.set_result(last_sequences(gathered.result()))
                except LogUnavailable as failed:
                    done.set_exception(failed)
            if done.done() and not done.cancelled():
                done.exception()  # retrieved here; the joiners re-raise it

        asyncio.gather(*replies).add_done_callback(answered)

    async def read(self, nsp: str, room: str, after: int, upto: int, limit: int) -> list[Stored]:
        found: list[Stored] = []
        start = after + 1
        while len(found) < limit and start <= upto:
            batch = min(READ_BATCH, limit - len(found))
            request = {"seq": start, "next_by_subj": self._subjects.log(nsp, room),
                       "batch": batch}
            page = [m for m in await self._direct(nsp, request) if m.seq <= upto]
            found.extend(page)
            if len(page) < batch:
                break
            start = page[-1].seq + 1
        return found

    async def prev_of(self, nsp: str, room: str, seq: int) -> int:
        if seq <= 1:
            return 0
        request = {"multi_last": [self._subjects.log(nsp, room)], "up_to_seq": seq - 1,
                   "batch": 1}
        found = await self._direct(nsp, request)
        if found:
            return found[-1].seq
        last = await self.last_seq(nsp, room)  # up_to_seq past the log's end finds nothing
        return last if last < seq else 0

    async def first_seq(self, nsp: str) -> int:
        """The log's first sequence, asked once for every caller of this loop pass: the
        request leaves after they all asked, so none gets an answer older than its question
        (recoveries arriving together each needed one stream-info request)."""
        pending = self._firsts.get(nsp)
        if pending is None:
            loop = asyncio.get_running_loop()
            pending = self._firsts[nsp] = loop.create_future()
            loop.call_soon(self._ask_first, nsp, pending)
        return await asyncio.shield(pending)

    def _ask_first(self, nsp: str, pending: asyncio.Future[int]) -> None:
        self._firsts.pop(nsp, None)

        async def ask() -> None:
            try:
                info = await self._js.stream_info(self._subjects.log_stream(nsp))
            except (NatsError, JetStreamError, TimeoutError) as exc:
                pending.set_exception(unavailable(exc))
                pending.exception()  # retrieved here; the callers re-raise it
                return
            pending.set_result(int(info.state.first_seq or 1))

        task = asyncio.get_running_loop().create_task(ask())
        self._asking.add(task)
        task.add_done_callback(self._asking.discard)

    async def store_inbox(self, user: str, body: bytes, msg_id: str | None = None) -> None:
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        try:
            await self._js.publish(self._subjects.inbox(user), body, headers=headers)
        except (NatsError, JetStreamError, TimeoutError) as exc:
            raise unavailable(exc) from exc

    async def take_inbox(self, user: str) -> list[Stored]:
        request = {"seq": 1, "next_by_subj": self._subjects.inbox(user),
                   "batch": self._settings.inbox_max}
        return await self._direct_stream(self._subjects.inbox_stream(), request)

    async def clear_inbox(self, user: str, upto: int) -> None:
        try:
            await self._js.purge_stream(self._subjects.inbox_stream(),
                                        subject=self._subjects.inbox(user), seq=upto + 1)
        except (NatsError, JetStreamError, TimeoutError) as exc:
            raise unavailable(exc) from exc

    async def _direct(self, nsp: str, request: dict[str, object]) -> list[Stored]:
        return await self._direct_stream(self._subjects.log_stream(nsp), request)

    async def _direct_stream(self, stream: str, request: dict[str, object]) -> list[Stored]:
        """One batch direct get: stored messages until the ``204 EOB`` (or ``404``) status."""
        try:
            replies = await self.requests.batch(direct_get(stream),
                                                json.dumps(request).encode())
        except LogUnavailable as exc:
            raise LogUnavailable(f"log read failed: {exc}") from exc
        return stored_messages(replies)

    async def close(self) -> None:
        """Fail what is still in flight and stop the request and acknowledgement inboxes."""
        self.requests.close()
