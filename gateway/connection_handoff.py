"""The connection shell's side of a takeover (see :mod:`gateway.takeover`): on the owner,
leaving without a trace once nothing is half-done; on the new owner, carrying the session on
without the client seeing a change.

The owner's sockets leave their rooms and the durable ones stop leasing their records, but
no DISCONNECT, lifecycle event or registry release happens: the session is not over, it moved.
Presence hears of the old sockets' end a moment later, after the new owner announced them, so
no member sees anyone leave and come back. The new owner re-admits the same connection id
(the registry slot is reused, now naming it), subscribes the rooms, and gives each durable
socket what it was owed since the offset it had been sent, from the log, as a recovery would.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.actions import NamespaceSocket, Restore
from gateway.delivery import Member
from gateway.eager import start
from gateway.takeover_state import SessionState
from gateway.websocket_protocol import SENT_CLOSE
from shared.protocol.offsets import encode_offset

if TYPE_CHECKING:
    from gateway.admission import Admission
    from gateway.channel import Channel
    from gateway.durable import DurableSockets
    from gateway.fanout import Fanout
    from gateway.outbox import Outbox
    from gateway.presence_emitter import PresenceEmitter
    from gateway.publish_queue import PublishQueue
    from gateway.session import Session
    from shared.metrics import GatewayMetrics

log = logging.getLogger(__name__)

PRESENCE_HANDOVER_S = 2.0
"""How long after a handover the old owner's presence records end: the new owner's come first."""


class ConnectionHandoff:
    """Mixed into :class:`gateway.connection.Connection`."""

    ws: Channel
    session: Session
    members: dict[str, Member]
    outbox: Outbox
    eio_sid: str
    _fanout: Fanout
    _durable: DurableSockets
    _admission: Admission
    _presence: PresenceEmitter | None
    _metrics: GatewayMetrics
    _busy: asyncio.Task[None] | None
    _backlog: deque[Any] | None
    _publishes: PublishQueue[Any]
    _timer: asyncio.TimerHandle | None
    _closing: bool
    _loop: asyncio.AbstractEventLoop
    _on_finished: Callable[..., None] | None

    def settled(self) -> bool:
        """Nothing waits on NATS or the application: the session may be handed over."""
        return (self._busy is None and not self._backlog and self._publishes.idle
                and not self._closing and self.session.settled())

    def hand_over(self) -> SessionState:
        """Owner: the session as it stands, and this connection gone without a word. What the
        outbox holds goes to the channel first; nothing is written after the offsets are read,
        so the new owner's replay starts exactly where this gateway stopped."""
        self.outbox.flush()
        offsets = {nsp: _offset(self._fanout, member, nsp)
                   for nsp, member in self.members.items() if member.offsets}
        sockets = list(self.session.sockets.values())
        state = self.session.hand_over(self._loop.time(), offsets)
        if self._timer is not None:
            self._timer.cancel()
        self._closing = True
        self.outbox.transport = SENT_CLOSE
        self._metrics.connections.dec()
        self._admission.forget(self)  # type: ignore[arg-type]
        start(self._leave_quietly(sockets))
        return state

    async def _leave_quietly(self, sockets: list[NamespaceSocket]) -> None:
        try:
            for socket in sockets:
                member = self.members.pop(socket.nsp, None)
                self._metrics.sockets.labels(socket.nsp).dec()
                if socket.durable:
                    self._durable.forget(socket)
                if member is not None:
                    for room in socket.rooms:
                        await self._fanout.leave((socket.nsp, room), member)
                if self._presence is not None:
                    self._loop.call_later(PRESENCE_HANDOVER_S, self._presence.socket, socket,
                                          False)
        finally:
            if self._on_finished is not None:
                self._on_finished(self)

    async def take_over(self, state: SessionState) -> bool:
        """New owner: carry ``state`` on here. ``False`` if a durable socket could not be
        given what it was owed (the caller closes the connection: the client then reconnects
        and recovers)."""
        self._metrics.connections.inc()
        offsets = {s.nsp: s.offset for s in state.sockets}
        for socket in self.session.take_over(state, self._loop.time()):
            await self._admission.admit(self, socket.identity.sub, socket.nsp)  # type: ignore[arg-type]
            member = self.members[socket.nsp] = Member(self.outbox,
                                                       offsets=socket.pid is not None)
            self._metrics.sockets.labels(socket.nsp).inc()
            if socket.durable and socket.pid is not None:
                restore = Restore(socket.pid, offsets.get(socket.nsp))
                resumed = await self._durable.open(socket, member, restore)
                if resumed is None:
                    log.warning("taken-over socket %s could not be resumed", socket.sid[:6])
                    return False
                self._durable.resume(member, resumed)
            else:
                for room in list(socket.rooms):
                    await self._fanout.join((socket.nsp, room), member)
            if self._presence is not None:
                self._presence.socket(socket, True)
        self._arm_timer()
        return True

    def _arm_timer(self) -> None:
        raise NotImplementedError


def _offset(fanout: Fanout, member: Member, nsp: str) -> str:
    claim = fanout.claim(member, nsp)
    return encode_offset(claim.frontier, claim.lagging)
