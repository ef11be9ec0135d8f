"""A nats-py client that hands room fan-out messages to one sink, in wire order.

nats-py gives every subscription its own task and queue, so messages of different rooms can
be processed out of the order the server sent them; and it parses every header block into a
dict (about 15 µs each). The fan-out needs neither: it needs the server's order (for a
durable namespace, the log's order) and two numbers from the headers. Routed subscriptions are
therefore handled right where the protocol parser hands each message over, before nats-py
builds a message object; reply inboxes and raw publishes come from
:class:`shared.light_client.LightClient`, every other subscription works as usual.

A routed subscription is not a nats-py ``Subscription`` either: that one carries an
``asyncio.Queue`` (four deques) a routed message never enters, about 3 KB, and every socket
holds its user room's subscription. nats-py keeps a :class:`RoutedSub` in its table instead,
which is all it reads to replay the SUB after a reconnect and to drop it on close or drain.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from nats.aio.subscription import Subscription
from nats.errors import BadSubjectError, ConnectionClosedError, ConnectionDrainingError

from shared.light_client import LightClient, header_int

Route = Callable[[bytes, bytes | None], None]

_SEQ = b"\r\nNats-Sequence: "
_PREV = b"\r\nNats-Last-Sequence: "


def sequence_headers(headers: bytes | None) -> tuple[int | None, int | None]:
    """(seq, prev) from a republished message's raw header block."""
    if not headers:
        return None, None
    return header_int(headers, _SEQ), header_int(headers, _PREV)


class RoutedSub:
    """What nats-py's client reads of an entry in its subscription table, and no more."""

    __slots__ = ("_client", "_id", "_received", "_subject")
    _queue = ""
    _max_msgs = 0
    _jsi = None
    _wait_for_msgs_task = None
    _message_iterator = None
    _pending_next_msgs_calls = None

    def __init__(self, client: FanoutClient, sid: int, subject: str) -> None:
        self._client = client
        self._id = sid
        self._subject = subject
        self._received = 0

    @property
    def subject(self) -> str:
        """The subject, read as on nats-py's ``Subscription``."""
        return self._subject

    async def _drain(self) -> None:
        """The client drains: no more of this subject (nothing is queued to wait for)."""
        await self._client._send_unsubscribe(self._id)
        self._client.forget(self._id)


class FanoutClient(LightClient):
    def __init__(self) -> None:
        super().__init__()
        self._routes: dict[int, Route] = {}

    async def subscribe_routed(self, subject: str, handler: Route) -> int:
        """SUB ``subject`` with every message going to ``handler``; its sid."""
        if not subject or any(c in subject for c in " \t\r\n"):
            raise BadSubjectError
        if self.is_closed:
            raise ConnectionClosedError
        if self.is_draining:
            raise ConnectionDrainingError
        self._sid += 1
        sid: int = self._sid
        # Typed as nats-py's Subscription: it reads only the attributes RoutedSub carries.
        sub = cast(Subscription, RoutedSub(self, sid, subject))
        self._subs[sid] = sub
        self._routes[sid] = handler
        await self._send_subscribe(sub)
        return sid

    async def unsubscribe_routed(self, sid: int) -> None:
        """UNSUB; nothing more reaches the handler from here on."""
        if self.forget(sid) and not self.is_closed and not self.is_reconnecting:
            await self._send_unsubscribe(sid)

    def forget(self, sid: int) -> bool:
        """Drop a routed subscription from both tables; whether it was there."""
        self._routes.pop(sid, None)
        return self._subs.pop(sid, None) is not None

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        handler = self._routes.get(sid)
        if handler is None:
            await super()._process_msg(sid, subject, reply, data, headers)
            return
        self.stats["in_msgs"] += 1
        self.stats["in_bytes"] += len(data)
        handler(data, headers)
