"""The session core's side of a takeover: when it may be handed over, what it hands over, and
how the new owner's core takes it in (:mod:`gateway.takeover_state` is the wire form).

A session is handed over only when nothing of it is half-done: no namespace CONNECT waiting
for its hook, no binary packet half-assembled, no hook request in flight or queued. The shell
adds its own conditions (no action waiting on NATS, no publish unacknowledged), so every ack
the client is owed is already among the packets that move.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway import hooks
from gateway.actions import NamespaceSocket
from gateway.limits import LimitClass
from gateway.takeover_state import (
    SessionState,
    SocketState,
    export_buckets,
    export_meters,
    import_buckets,
    import_meters,
)
from shared.abuse import AbuseMeter
from shared.jwtauth import Identity
from shared.protocol.packets import BinaryAssembler
from shared.ratelimit import TokenBucket


class Handoff:
    """Mixed into :class:`gateway.session.Session`, whose state these read and write."""

    eio_sid: str
    closed: bool
    sockets: dict[str, NamespaceSocket]
    _upgrade_identity: Identity | None
    _headers: dict[str, str]
    _connecting: dict[str, hooks.PendingConnect]
    _assembler: BinaryAssembler
    _buckets: dict[LimitClass, TokenBucket]
    _meters: dict[LimitClass, AbuseMeter]
    _connect_deadline: float | None

    def settled(self) -> bool:
        """Nothing half-done that the new owner could not carry on."""
        return (not self._connecting and not self._assembler.pending
                and all(s.hook_in_flight == 0 and not s.hook_waiting and not s.hook_emit
                        for s in self.sockets.values()))

    def hand_over(self, now: float, offsets: Mapping[str, str | None]) -> SessionState:
        """This session as the new owner will take it; ``offsets`` by namespace say what each
        durable socket has been sent. The session is over here: it ends without a word."""
        sockets = [SocketState(s.nsp, s.sid, s.identity, sorted(s.rooms), s.pid, s.durable,
                               s.data, offsets.get(s.nsp),
                               {room: now - at for room, at in s.typing.items()})
                   for s in self.sockets.values()]
        state = SessionState(self.eio_sid, self._upgrade_identity, dict(self._headers),
                             sockets, export_buckets(self._buckets, now),
                             export_meters(self._meters, now))
        self.closed = True
        self.sockets = {}
        return state

    def take_over(self, state: SessionState, now: float) -> list[NamespaceSocket]:
        """Take in a session handed over by its owner; its sockets are returned for the shell
        to subscribe and register (nothing is sent: the client sees no change)."""
        for s in state.sockets:
            socket = NamespaceSocket(s.nsp, s.sid, s.identity, set(s.rooms), s.pid, s.durable,
                                     {room: now - age for room, age in s.typing.items()},
                                     s.data)
            self.sockets[s.nsp] = socket
        self._buckets = import_buckets(state.buckets, now)
        self._meters = import_meters(state.meters, now)
        if self.sockets:  # a session without one yet keeps its deadline for a CONNECT
            self._connect_deadline = None
        return list(self.sockets.values())
