"""Publishes to the room log, acknowledged without a task, future or timer per message.

nats-py's ``publish_async`` waits for its in-flight semaphore through ``asyncio.wait_for``
(a new Task and a timer: three event-loop passes per publish, measured), delivers each PubAck
through a subscription task, and the caller's ``wait_for`` on the ack adds two more passes and
a timer. At fan-out rates that stalls every publisher's reader for several passes, so frames
of one pass never coalesce. Here a publish is appended to the client's pending buffer at once,
its PubAck is read right where the protocol parser hands the reply over, and one sweeper
timer per gateway fails what stayed unanswered past the timeout. The in-flight bound is a
plain count: the loop is single-threaded, so it is exact.
"""

from __future__ import annotations

import orjson

from shared.request_mux import Reply, RequestMux
from shared.room_log import Done, LogUnavailable, PublishResult

MAX_IN_FLIGHT = 20_000
_NO_RESPONDERS = b"503"


def parse_ack(data: bytes, headers: bytes | None) -> PublishResult | None:
    """A PubAck body as the stream answers it; ``None`` for an error or no stream."""
    if headers and not data and _NO_RESPONDERS in headers[:16]:
        return None
    try:
        ack = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(ack, dict) or "error" in ack:
        return None
    seq = ack.get("seq")
    if not isinstance(seq, int):
        return None
    return PublishResult(seq, bool(ack.get("duplicate")))


def publish_headers(msg_id: str | None) -> bytes | None:
    if msg_id is None:
        return None
    return b"NATS/1.0\r\nNats-Msg-Id: " + msg_id.encode() + b"\r\n\r\n"


class LogPublisher:
    """Logged publishes in flight for one gateway, answered through ``done`` exactly once:
    with the stream's sequence, or ``None`` (error, timeout, lost connection). The replies
    travel through the room log's request mux (its inbox, its sweeper); only the in-flight
    bound and the PubAck reading are the publisher's own."""

    def __init__(self, requests: RequestMux, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._requests = requests
        self._max = max_in_flight

    def publish(self, subject: str, body: bytes, msg_id: str | None, done: Done) -> None:
        """Send now; raises :class:`LogUnavailable` when nothing could be sent."""
        if self._requests.in_flight >= self._max:
            raise LogUnavailable("too many publishes in flight")

        def answer(replies: list[Reply] | None) -> None:
            done(None if replies is None else parse_ack(replies[0].data, replies[0].headers))

        self._requests.send(subject, body, publish_headers(msg_id), answer)
