"""A nats-py client that hands room fan-out messages to one sink, in wire order.

nats-py gives every subscription its own task and queue, so messages of different rooms can
be processed out of the order the server sent them; and it parses every header block into a
dict (about 15 µs each). The fan-out needs neither: it needs the server's order (for a
durable namespace, the log's order) and two numbers from the headers. Routed subscriptions are
therefore handled right where the protocol parser hands each message over, before nats-py
builds a message object; reply inboxes and raw publishes come from
:class:`shared.light_client.LightClient`, every other subscription works as usual.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.light_client import LightClient, header_int

Route = Callable[[bytes, bytes | None], None]

_SEQ = b"\r\nNats-Sequence: "
_PREV = b"\r\nNats-Last-Sequence: "


def sequence_headers(headers: bytes | None) -> tuple[int | None, int | None]:
    """(seq, prev) from a republished message's raw header block."""
    if not headers:
        return None, None
    return header_int(headers, _SEQ), header_int(headers, _PREV)


class FanoutClient(LightClient):
    def __init__(self) -> None:
        super().__init__()
        self._routes: dict[int, Route] = {}

    def route(self, sid: int, handler: Route) -> None:
        self._routes[sid] = handler

    def unroute(self, sid: int) -> None:
        self._routes.pop(sid, None)

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
