"""A nats-py client whose requests and publishes skip nats-py's per-message machinery.

nats-py builds a ``Msg`` (headers parsed into a dict, about 15 µs each) and hops through a
subscription task for every reply, and ``publish`` is a coroutine per message. The light
request mux (:mod:`shared.request_mux`), the logged-publish fast path
(:mod:`shared.room_log.publisher`) and the registry's compare-and-set need neither: replies of
a routed inbox are handed over right where the protocol parser has them (raw header block),
and PUBs are appended to the pending buffer without a coroutine. Every other subscription
works as usual. The gateway's fan-out client extends this one with routed room subscriptions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from nats.aio.client import Client
from nats.errors import MaxPayloadError, OutboundBufferLimitError

from shared.room_log import LogUnavailable

ReplyRoute = Callable[[bytes, bytes, bytes | None], None]


def header_int(headers: bytes, name: bytes) -> int | None:
    """The integer value of header ``name`` (given as ``b"\\r\\nName: "``) in a raw block."""
    start = headers.find(name)
    if start < 0:
        return None
    start += len(name)
    end = headers.find(b"\r\n", start)
    try:
        return int(headers[start:end] if end >= 0 else headers[start:])
    except ValueError:
        return None


class LightClient(Client):
    def __init__(self) -> None:
        super().__init__()
        self._reply_routes: dict[int, ReplyRoute] = {}

    def route_replies(self, sid: int, handler: ReplyRoute) -> None:
        """Hand every message of subscription ``sid`` (a reply inbox) to ``handler`` with its
        subject, raw, instead of to nats-py."""
        self._reply_routes[sid] = handler

    def publish_nowait(self, subject: str, payload: bytes, reply: bytes = b"",
                       headers: bytes | None = None) -> None:
        """Queue a PUB (HPUB with a ready header block) for the flusher without a coroutine.

        nats-py's ``publish`` is a coroutine that never suspends on this path; calling it per
        message costs a coroutine object and its frames. Subjects here come from
        :mod:`shared.subjects`, already validated. Raises :class:`LogUnavailable` when
        nothing could be queued.
        """
        if not self.is_connected:
            raise LogUnavailable("not connected to NATS")
        size = len(payload)
        if size > self._max_payload:
            raise LogUnavailable(str(MaxPayloadError()))
        if headers is None:
            cmd = b"PUB %s %s %d\r\n%s\r\n" % (subject.encode(), reply, size, payload)
        else:
            cmd = b"HPUB %s %s %d %d\r\n%s%s\r\n" % (
                subject.encode(), reply, len(headers), len(headers) + size, headers, payload)
        if 0 < self._max_pending_size < self._pending_data_size + len(cmd):
            raise LogUnavailable(str(OutboundBufferLimitError()))
        self.stats["out_msgs"] += 1
        self.stats["out_bytes"] += size
        self._pending.append(cmd)
        self._pending_data_size += len(cmd)
        queue = self._flush_queue
        if queue is not None and queue.empty():
            queue.put_nowait(self._loop_future())

    def _loop_future(self) -> asyncio.Future[None]:
        return asyncio.get_running_loop().create_future()

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        replies = self._reply_routes.get(sid)
        if replies is not None:
            replies(subject, data, headers)
            return
        await super()._process_msg(sid, subject, reply, data, headers)  # type: ignore[arg-type]
