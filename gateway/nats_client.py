"""A nats-py client that hands room fan-out messages to one sink, in wire order.

nats-py gives every subscription its own task and queue, so messages of different rooms can
be processed out of the order the server sent them; and it parses every header block into a
dict (about 15 µs each). The fan-out needs neither: it needs the server's order (for a
durable namespace, the log's order) and two numbers from the headers. Routed subscriptions are
therefore handled right where the protocol parser hands each message over, before nats-py
builds a message object; every other subscription works as usual.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from nats.aio.client import Client
from nats.errors import MaxPayloadError, OutboundBufferLimitError

from gateway.broker import BrokerUnavailable

Route = Callable[[bytes, bytes | None], None]
ReplyRoute = Callable[[bytes, bytes, bytes | None], None]

_SEQ = b"\r\nNats-Sequence: "
_PREV = b"\r\nNats-Last-Sequence: "


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


def sequence_headers(headers: bytes | None) -> tuple[int | None, int | None]:
    """(seq, prev) from a republished message's raw header block."""
    if not headers:
        return None, None
    return header_int(headers, _SEQ), header_int(headers, _PREV)


class FanoutClient(Client):
    def __init__(self) -> None:
        super().__init__()
        self._routes: dict[int, Route] = {}
        self._reply_routes: dict[int, ReplyRoute] = {}

    def route(self, sid: int, handler: Route) -> None:
        self._routes[sid] = handler

    def route_replies(self, sid: int, handler: ReplyRoute) -> None:
        """Like :meth:`route`, for a reply inbox whose handler needs the subject."""
        self._reply_routes[sid] = handler

    def publish_nowait(self, subject: str, payload: bytes, reply: bytes = b"",
                       headers: bytes | None = None) -> None:
        """Queue a PUB (HPUB with a ready header block) for the flusher without a coroutine.

        nats-py's ``publish`` is a coroutine that never suspends on this path; calling it per
        message costs a coroutine object and its frames. Subjects here come from
        :mod:`shared.subjects`, already validated.
        """
        if not self.is_connected:
            raise BrokerUnavailable("not connected to NATS")
        size = len(payload)
        if size > self._max_payload:
            raise BrokerUnavailable(str(MaxPayloadError()))
        if headers is None:
            cmd = b"PUB %s %s %d\r\n%s\r\n" % (subject.encode(), reply, size, payload)
        else:
            cmd = b"HPUB %s %s %d %d\r\n%s%s\r\n" % (
                subject.encode(), reply, len(headers), len(headers) + size, headers, payload)
        if 0 < self._max_pending_size < self._pending_data_size + len(cmd):
            raise BrokerUnavailable(str(OutboundBufferLimitError()))
        self.stats["out_msgs"] += 1
        self.stats["out_bytes"] += size
        self._pending.append(cmd)
        self._pending_data_size += len(cmd)
        queue = self._flush_queue
        if queue is not None and queue.empty():
            queue.put_nowait(self._loop_future())

    def _loop_future(self) -> asyncio.Future[None]:
        return asyncio.get_running_loop().create_future()

    def unroute(self, sid: int) -> None:
        self._routes.pop(sid, None)

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        handler = self._routes.get(sid)
        if handler is None:
            replies = self._reply_routes.get(sid)
            if replies is not None:
                replies(subject, data, headers)
                return
            await super()._process_msg(sid, subject, reply, data, headers)  # type: ignore[arg-type]
            return
        self.stats["in_msgs"] += 1
        self.stats["in_bytes"] += len(data)
        handler(data, headers)
