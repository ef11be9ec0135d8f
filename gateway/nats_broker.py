"""The broker on NATS: core subjects for fan-out, a JetStream stream per durable namespace.

A durable namespace's stream captures ``<prefix>.log.<ns>.<room>`` and republishes each
stored message to the room's fan-out subject with ``Nats-Sequence`` and
``Nats-Last-Sequence``, the server-side per-room prev pointer. Reads use batch direct get
(nats-py has no API for it): one request, messages until a ``204 EOB`` status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field

from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.js.api import RePublish, StorageType, StreamConfig
from nats.js.errors import BadRequestError
from nats.js.errors import Error as JetStreamError

from gateway.broker import BrokerUnavailable, Delivery, Done, PublishResult, Sink, Stored
from gateway.log_publisher import LogPublisher
from gateway.nats_client import FanoutClient, header_int, sequence_headers
from shared.namespaces import DURABLE
from shared.request_mux import Reply, RequestMux
from shared.subjects import Subjects, namespace_token

REQUEST_TIMEOUT_S = 2.0
READ_BATCH = 256
PROBE_BATCH = 256  # rooms per multi_last request
_SUBJECT = b"\r\nNats-Subject: "
_SEQUENCE = b"\r\nNats-Sequence: "
UNLOGGED = PublishResult()


def unavailable(exc: BaseException) -> BrokerUnavailable:
    return BrokerUnavailable(str(exc) or type(exc).__name__)


def last_sequences(batches: list[list[Reply]]) -> dict[str, int]:
    """Subject -> last sequence from ``multi_last`` direct gets: each batch is the rooms'
    last messages, then the end-of-batch status (``404``: none of them has any)."""
    found: dict[str, int] = {}
    for replies in batches:
        end = replies[-1].status
        if end not in (b"204", b"404"):
            raise BrokerUnavailable(f"log probe failed: status {end.decode() or '?'}")
        for reply in replies[:-1]:
            headers = reply.headers or b""
            seq = header_int(headers, _SEQUENCE)
            start = headers.find(_SUBJECT)
            if seq is None or start < 0:
                raise BrokerUnavailable("log probe: a reply without subject or sequence")
            start += len(_SUBJECT)
            end_of = headers.find(b"\r\n", start)
            found[headers[start:end_of if end_of >= 0 else None].decode()] = seq
    return found


@dataclass(frozen=True, slots=True)
class LogSettings:
    durable: frozenset[str] = DURABLE
    replicas: int = 1
    duplicate_window_s: float = 120.0
    max_age_s: float = 7 * 24 * 3600.0
    max_per_room: int = 10_000
    inbox_max: int = 100
    inbox_max_age_s: float = 7 * 24 * 3600.0


@dataclass(slots=True)
class _Probe:
    """The rooms of one namespace whose last sequence is asked for in one loop pass."""

    rooms: set[str] = field(default_factory=set)
    done: asyncio.Future[dict[str, int]] | None = None


class NatsBroker:
    """Round trips on the join path: a new room's SUB is proven by a request queued behind it
    on the same connection (see :mod:`shared.request_mux`), never by a flush. In a durable
    namespace that request is the probe of the rooms' last sequences, one ``multi_last``
    direct get for every room subscribed or asked about in the same loop pass; the position
    it found is what :meth:`last_seq` answers right after :meth:`subscribe` returns."""

    def __init__(self, nc: FanoutClient, subjects: Subjects, log: LogSettings) -> None:
        self._nc = nc
        self._js = nc.jetstream(timeout=REQUEST_TIMEOUT_S)
        self._subjects = subjects
        self._log = log
        self._sink: Sink | None = None
        self._subs: dict[tuple[str, str], Subscription] = {}
        self._publisher = LogPublisher(nc, REQUEST_TIMEOUT_S)
        self.requests = RequestMux(nc, REQUEST_TIMEOUT_S, BrokerUnavailable)
        self._probes: dict[str, _Probe] = {}
        self._settled: dict[tuple[str, str], int] = {}

    async def start(self) -> None:
        """Subscribe the inboxes of publish acknowledgements and of requests (before any
        logged publish or request)."""
        await self._publisher.start()
        await self.requests.start()

    def stream_name(self, nsp: str) -> str:
        return f"{self._subjects.prefix}_{namespace_token(nsp)}".upper().replace("-", "_")

    async def ensure_streams(self) -> None:
        """Create or update each durable namespace's stream (idempotent across gateways)."""
        for nsp in sorted(self._log.durable):
            config = StreamConfig(
                name=self.stream_name(nsp),
                subjects=[self._subjects.log_wildcard(nsp)],
                storage=StorageType.FILE,
                num_replicas=self._log.replicas,
                duplicate_window=self._log.duplicate_window_s,
                max_age=self._log.max_age_s,
                max_msgs_per_subject=self._log.max_per_room,
                allow_direct=True,
                republish=RePublish(src=self._subjects.log_wildcard(nsp),
                                    dest=self._subjects.fanout_from_log(nsp)),
            )
            try:
                await self._js.add_stream(config)
            except BadRequestError:
                await self._js.update_stream(config)

    @property
    def inbox_stream(self) -> str:
        return f"{self._subjects.prefix}_INBOX".upper()

    async def ensure_inbox(self) -> None:
        config = StreamConfig(
            name=self.inbox_stream, subjects=[self._subjects.inbox_wildcard()],
            storage=StorageType.FILE, num_replicas=self._log.replicas,
            max_msgs_per_subject=self._log.inbox_max, max_age=self._log.inbox_max_age_s,
            allow_direct=True)
        try:
            await self._js.add_stream(config)
        except BadRequestError:
            await self._js.update_stream(config)

    async def store_inbox(self, user: str, body: bytes, msg_id: str | None = None) -> None:
        headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        try:
            await self._js.publish(self._subjects.inbox(user), body, headers=headers)
        except (NatsError, JetStreamError, TimeoutError) as exc:
            raise unavailable(exc) from exc

    async def take_inbox(self, user: str) -> list[Stored]:
        request = {"seq": 1, "next_by_subj": self._subjects.inbox(user),
                   "batch": self._log.inbox_max}
        return await self._direct_stream(self.inbox_stream, request)

    async def clear_inbox(self, user: str, upto: int) -> None:
        try:
            await self._js.purge_stream(self.inbox_stream, subject=self._subjects.inbox(user),
                                        seq=upto + 1)
        except (NatsError, JetStreamError, TimeoutError) as exc:
            raise unavailable(exc) from exc

    def attach(self, sink: Sink) -> None:
        self._sink = sink

    async def subscribe(self, nsp: str, room: str) -> None:
        key = (nsp, room)
        if key in self._subs:
            return
        sink = self._sink
        assert sink is not None, "attach a sink before subscribing"

        def on_message(data: bytes, headers: bytes | None) -> None:
            seq, prev = sequence_headers(headers)
            sink(Delivery(nsp, room, data, seq, prev))

        try:
            sub = await self._nc.subscribe(self._subjects.fanout(nsp, room))
            self._nc.route(sub._id, on_message)
            self._subs[key] = sub
            if nsp in self._log.durable:
                self._settled[key] = await self._probe(nsp, room)
                # For the joiner that called us, which asks at once; nobody later.
                asyncio.get_running_loop().call_soon(self._settled.pop, key, None)
            else:
                await self.requests.barrier()
        except (NatsError, TimeoutError, BrokerUnavailable) as exc:
            await self.unsubscribe(nsp, room)
            raise unavailable(exc) from exc

    async def unsubscribe(self, nsp: str, room: str) -> None:
        self._settled.pop((nsp, room), None)
        sub = self._subs.pop((nsp, room), None)
        if sub is not None:
            self._nc.unroute(sub._id)
            with contextlib.suppress(NatsError):  # a lost connection took the sub with it
                await sub.unsubscribe()

    async def publish(
        self, nsp: str, room: str, body: bytes, msg_id: str | None = None, logged: bool = False
    ) -> PublishResult:
        if not self._nc.is_connected:
            raise BrokerUnavailable("not connected to NATS")
        try:
            if logged and nsp in self._log.durable:
                headers = {"Nats-Msg-Id": msg_id} if msg_id else None
                ack = await self._js.publish(self._subjects.log(nsp, room), body,
                                             headers=headers)
                return PublishResult(ack.seq, bool(ack.duplicate))
            await self._nc.publish(self._subjects.fanout(nsp, room), body)
        except (NatsError, JetStreamError, TimeoutError) as exc:
            raise unavailable(exc) from exc
        return PublishResult()

    def begin_publish(
        self, nsp: str, room: str, body: bytes, msg_id: str | None, logged: bool, done: Done
    ) -> None:
        if logged and nsp in self._log.durable:
            self._publisher.publish(self._subjects.log(nsp, room), body, msg_id, done)
            return
        self._nc.publish_nowait(self._subjects.fanout(nsp, room), body)
        done(UNLOGGED)

    async def last_seq(self, nsp: str, room: str) -> int:
        settled = self._settled.pop((nsp, room), None)
        if settled is not None:
            return settled
        return await self._probe(nsp, room)

    async def _probe(self, nsp: str, room: str) -> int:
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
        api = f"$JS.API.DIRECT.GET.{self.stream_name(nsp)}"
        try:
            replies = [self.requests.batch(api, json.dumps(
                {"multi_last": chunk, "batch": len(chunk)}).encode())
                for chunk in (subjects[i:i + PROBE_BATCH]
                              for i in range(0, len(subjects), PROBE_BATCH))]
        except BrokerUnavailable as exc:
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
                except BrokerUnavailable as failed:
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
        try:
            info = await self._js.stream_info(self.stream_name(nsp))
        except (NatsError, JetStreamError, TimeoutError) as exc:
            raise unavailable(exc) from exc
        return int(info.state.first_seq or 1)

    async def _direct(self, nsp: str, request: dict[str, object]) -> list[Stored]:
        return await self._direct_stream(self.stream_name(nsp), request)

    async def _direct_stream(self, stream: str, request: dict[str, object]) -> list[Stored]:
        """One batch direct get: stored messages until the ``204 EOB`` (or ``404``) status."""
        try:
            replies = await self.requests.batch(f"$JS.API.DIRECT.GET.{stream}",
                                                json.dumps(request).encode())
        except BrokerUnavailable as exc:
            raise BrokerUnavailable(f"log read failed: {exc}") from exc
        if replies[-1].status not in (b"204", b"404"):
            raise BrokerUnavailable(f"log read failed: status {replies[-1].status.decode()}")
        found: list[Stored] = []
        for reply in replies[:-1]:
            seq = header_int(reply.headers or b"", _SEQUENCE)
            if seq is None:
                raise BrokerUnavailable("log read failed: a message without its sequence")
            found.append(Stored(seq, reply.data))
        return found

    async def close(self) -> None:
        self._publisher.close()
        self.requests.close()
        for nsp, room in list(self._subs):
            await self.unsubscribe(nsp, room)
