"""An upgrade that lands on another gateway takes the whole Engine.IO session over.

Without sticky sessions, a polling session's upgrade WebSocket usually reaches a gateway that
does not hold the session. Before answering the upgrade, that gateway asks the owner (named
by the sid) on ``<prefix>.gw.<owner>.takeover``, in one request. The owner freezes the
session first (polls wait, posts are kept, nothing more goes to the polling transport), waits
until nothing of it is half-done (a publish awaiting its ack, a hook request; bounded), then
answers with the session (:mod:`gateway.takeover_state`) and forgets it, forwarding whatever
the client still sends it over polling to the new owner. The new owner rebuilds the session
around a polling channel of its own, preloaded with the packets the client was owed, reads
what the client posted meanwhile, and only then answers ``101``: the upgrade carries on there
exactly as on the owner (``2probe``, ``3probe``, the noop, ``5``). If the owner is gone or
cannot hand over, the upgrade gets 400 and the client keeps polling or reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError

from gateway.polling import PollingChannel, payload_size
from gateway.polling_forward import ANSWER_ROOM, STATUS
from gateway.takeover_state import BadState, SessionState
from shared.metrics import GatewayMetrics
from shared.subjects import Subjects

log = logging.getLogger(__name__)

TAKER = "Sb-Gateway"
SETTLE_POLL_S = 0.005
MOVED_MAX = 100_000
"""Namespace sockets remembered as moved (their sids still name this gateway)."""


@runtime_checkable
class Movable(Protocol):
    """The connection of a session, as a takeover sees it."""

    def settled(self) -> bool: ...

    def hand_over(self) -> SessionState: ...


class Takeovers:
    """Both sides: :meth:`take` on the gateway an upgrade landed on, and the owner's answer."""

    def __init__(self, nc: Client, subjects: Subjects, gateway_id: str,
                 sessions: Callable[[str], PollingChannel | None], settle_s: float,
                 metrics: GatewayMetrics) -> None:
        self._nc = nc
        self._subjects = subjects
        self._gateway_id = gateway_id
        self._sessions = sessions
        self._settle_s = settle_s
        self._metrics = metrics
        self._answering: set[asyncio.Task[None]] = set()
        self.moved: OrderedDict[str, str] = OrderedDict()
        """Namespace socket sid → the gateway that took its session over."""

    async def start(self) -> None:
        await self._nc.subscribe(self._subjects.session_takeover(self._gateway_id),
                                 cb=self._serve)

    # --- the gateway the upgrade landed on ------------------------------------------------

    async def take(self, owner: str, sid: str) -> SessionState | None:
        """The session, handed over by ``owner``; ``None`` if it gave nothing."""
        try:
            reply = await self._nc.request(
                self._subjects.session_takeover(owner), sid.encode(),
                timeout=self._settle_s + 2.0, headers={TAKER: self._gateway_id})
        except (TimeoutError, NatsError) as exc:
            log.info("takeover of %s from %s failed: %s", sid[:6], owner, type(exc).__name__)
            self._metrics.takeovers.labels("failed").inc()
            return None
        if (reply.headers or {}).get(STATUS) != "200":
            self._metrics.takeovers.labels("failed").inc()
            return None
        try:
            state = SessionState.decode(reply.data)
        except BadState as exc:
            log.warning("takeover of %s from %s: bad state (%s)", sid[:6], owner, exc)
            self._metrics.takeovers.labels("failed").inc()
            return None
        self._metrics.takeovers.labels("taken").inc()
        return state

    # --- the owner --------------------------------------------------------------------------

    async def _serve(self, msg: Msg) -> None:
        task = asyncio.ensure_future(self._hand_over(msg))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _hand_over(self, msg: Msg) -> None:
        taker = (msg.headers or {}).get(TAKER, "")
        channel = self._sessions(msg.data.decode(errors="replace"))
        connection = channel.handler if channel is not None else None
        if (channel is None or not taker or not isinstance(connection, Movable)
                or channel.closed or channel.upgraded or channel.upgrading or channel.frozen
                or channel.moved_to is not None):
            await self._reply(msg, "404", b"")
            return
        channel.freeze()
        if not await self._settle(channel, connection):
            channel.thaw()
            self._metrics.takeovers.labels("refused").inc()
            await self._reply(msg, "503", b"")
            return
        state = connection.hand_over()
        state.packets = channel.moved(taker)
        state.posted, channel.held = channel.held, []
        await self._reply(msg, "200", state.encode())
        for socket in state.sockets:
            self.moved[socket.sid] = taker
            if len(self.moved) > MOVED_MAX:
                self.moved.popitem(last=False)
        self._metrics.takeovers.labels("given").inc()
        log.info("session %s handed over to %s", state.sid[:6], taker)

    async def _settle(self, channel: PollingChannel, connection: Movable) -> bool:
        """Until nothing is half-done, within the bound; the answer must fit one message."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settle_s
        while not connection.settled():
            if channel.closed or loop.time() > deadline:
                return False
            await asyncio.sleep(SETTLE_POLL_S)
        room = self._nc.max_payload - ANSWER_ROOM
        return not channel.closed and payload_size([*channel.waiting, *channel.held]) < room

    async def _reply(self, msg: Msg, status: str, body: bytes) -> None:
        if msg.reply:
            with contextlib.suppress(NatsError):
                await self._nc.publish(msg.reply, body, headers={STATUS: status})

