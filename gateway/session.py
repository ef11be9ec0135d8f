"""One Engine.IO connection as pure state: frames and ``now`` in, actions out.

It owns the Engine.IO rules (open, heartbeat, connect deadline), the Socket.IO namespace
state machine (CONNECT / DISCONNECT / EVENT per namespace, as the reference server's
``client.ts`` has it) and binary reassembly, and runs each namespace's chains. Malformed
packets get a ``request:error`` and the connection lives; state violations the reference
server closes on (an event before CONNECT, a stray binary frame) close it here too.

What the shell's I/O found comes back in as inputs (``opened``, ``joined``, ``join_failed``,
``published``, ``history_page``, ...), so the socket's rooms and ids are written here only,
and every ack and error frame is built here (with :mod:`gateway.replies`): the shell
decides nothing a test could not check with plain calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.actions import (
    CONNECT_EVENT,
    AckTo,
    Action,
    Announce,
    Close,
    Closed,
    History,
    Join,
    JoinFailure,
    NamespaceSocket,
    Observed,
    Opened,
    PresenceQuery,
    Publish,
    Recovered,
    SendText,
    TypingChange,
)
from gateway.broker import PublishResult
from gateway.limits import LimitClass, Limits, charge
from gateway.middleware import ConnectContext, EventContext, Namespace
from gateway.recovery import restore_request
from gateway.replies import (
    Failure,
    acknowledge,
    answer_failure,
    connect_error,
    connect_reply,
    failed,
    history_answer,
    io_failed,
    too_many_connections,
)
from shared.abuse import AbuseMeter
from shared.heartbeat import Beat, Heartbeat
from shared.jwtauth import Identity, TokenVerifier
from shared.protocol.engineio import PING_FRAME, EioType, InvalidFrame, encode_open, parse_frame
from shared.protocol.errors import CloseCode, ErrorCode
from shared.protocol.events import ROOM_HISTORY, ROOM_JOIN, ROOM_PRESENCE, TYPING_START, TYPING_STOP
from shared.protocol.packets import (
    BinaryAssembler,
    InvalidPacket,
    Packet,
    PacketType,
    encode_packet,
    parse_packet,
)
from shared.ratelimit import TokenBucket
from shared.room_log.paging import Page
from shared.subjects import user_room


@dataclass(frozen=True, slots=True)
class SessionConfig:
    ping_interval_ms: int = 25_000
    ping_timeout_ms: int = 5_000
    ping_misses: int = 2
    max_payload: int = 1_000_000
    connect_timeout_ms: int = 45_000
    limits: Limits = field(default_factory=Limits)


class Session:
    """Sans-I/O core of one connection. The shell calls :meth:`open` once, then
    :meth:`receive` per frame and :meth:`on_timer` at :meth:`next_deadline`."""

    def __init__(
        self,
        eio_sid: str,
        upgrade_identity: Identity | None,
        config: SessionConfig,
        namespaces: Mapping[str, Namespace],
        verifier: TokenVerifier,
        new_id: Callable[[], str],
        now: float,
        *,
        wall_clock: Callable[[], float],
    ) -> None:
        self.eio_sid = eio_sid
        self.config = config
        self.sockets: dict[str, NamespaceSocket] = {}
        self.closed = False
        self._upgrade_identity = upgrade_identity
        self._namespaces = namespaces
        self._verifier = verifier
        self._new_id = new_id
        self._wall_clock = wall_clock
        self._assembler = BinaryAssembler()
        self._buckets: dict[LimitClass, TokenBucket] = {}
        self._meters: dict[LimitClass, AbuseMeter] = {}
        self._now = now
        self._heartbeat = Heartbeat.start(
            now, config.ping_interval_ms / 1000, config.ping_timeout_ms / 1000, config.ping_misses
        )
        self._connect_deadline: float | None = now + config.connect_timeout_ms / 1000

    # --- Engine.IO -------------------------------------------------------------------------

    def open(self, upgrades: tuple[str, ...] = ()) -> list[Action]:
        """The open packet; ``upgrades`` are the transports a polling session may move to."""
        c = self.config
        return [SendText(encode_open(self.eio_sid, c.ping_interval_ms, c.ping_timeout_ms,
                                     c.max_payload, upgrades))]

    def next_deadline(self) -> float:
        deadline = self._heartbeat.next_deadline()
        if self._connect_deadline is not None:
            deadline = min(deadline, self._connect_deadline)
        return deadline

    def on_timer(self, now: float) -> list[Action]:
        if self.closed:
            return []
        if self._connect_deadline is not None and now >= self._connect_deadline:
            return self._close(CloseCode.CONNECT_TIMEOUT, "no namespace CONNECT in time")
        actions: list[Action] = []
        for beat in self._heartbeat.on_timer(now):
            if beat is Beat.DEAD:
                return self._close(CloseCode.PING_TIMEOUT, "ping timeout")
            actions.append(SendText(PING_FRAME))
        return actions

    def receive(self, frame: str | bytes, now: float) -> list[Action]:
        if self.closed:
            return []
        self._now = now
        eio = parse_frame(frame)
        if isinstance(eio, InvalidFrame):
            return self._close(CloseCode.PROTOCOL, eio.detail)
        if eio.type is EioType.MESSAGE:
            if isinstance(eio.data, bytes):
                return self._attachment(eio.data, now)
            if self._assembler.pending:
                return self._close(CloseCode.PROTOCOL, "text frame while attachments pending")
            return self._socketio(eio.data, now)
        if eio.type is EioType.PONG:
            self._heartbeat.on_pong()
            return []
        if eio.type is EioType.PING:
            return self._close(CloseCode.POLICY, "invalid heartbeat direction")
        if eio.type is EioType.CLOSE:
            return self._close(1000, "client close")
        return []  # NOOP / UPGRADE mean nothing on a websocket-only session

    def transport_closed(self) -> list[Action]:
        """The socket is gone (any reason): every namespace socket ends."""
        self.closed = True
        sockets, self.sockets = list(self.sockets.values()), {}
        return [_closed(s) for s in sockets]

    def _close(self, code: int, reason: str) -> list[Action]:
        return [Close(code, reason)]

    # --- Socket.IO -------------------------------------------------------------------------

    def _attachment(self, data: bytes, now: float) -> list[Action]:
        result = self._assembler.add(data)
        if result is None:
            return []
        if isinstance(result, InvalidPacket):
            if result.nsp is not None:  # a complete packet with bad placeholders
                return self._malformed(result, now)
            return self._close(CloseCode.PROTOCOL, result.detail)
        return self._packet(result, now)

    def _socketio(self, text: str, now: float) -> list[Action]:
        packet = parse_packet(text)
        if isinstance(packet, InvalidPacket):
            return self._malformed(packet, now)
        if packet.type in (PacketType.BINARY_EVENT, PacketType.BINARY_ACK):
            if packet.nsp not in self.sockets:
                return self._close(CloseCode.POLICY, "binary packet before CONNECT")
            started = self._assembler.start(packet)
            if started is None:
                return []
            if isinstance(started, InvalidPacket):
                return self._malformed(started, now)
            return self._packet(started, now)
        return self._packet(packet, now)

    def _malformed(self, invalid: InvalidPacket, now: float) -> list[Action]:
        """Answer on the namespace the packet named (else any connected one), with an ack
        when it carried an id. Bad packets spend the request budget like any request."""
        nsp = invalid.nsp if invalid.nsp is not None else "/"
        target = nsp if nsp in self.sockets else next(iter(self.sockets), None)
        if target is None:
            return []
        reply = AckTo(target, invalid.id if target == nsp else None)
        failure = charge(self._buckets, self.config.limits, LimitClass.REQUEST, now) or Failure(
            ErrorCode.BAD_REQUEST, f"malformed packet: {invalid.detail}")
        actions: list[Action] = [Observed(target, "malformed", failure.code.value),
                                 answer_failure(reply, None, failure)]
        if failure.code is ErrorCode.RATE_LIMITED and self._abusive("malformed"):
            actions.extend(self.disconnect_all("abuse: kept sending malformed packets"))
        return actions

    def _packet(self, packet: Packet, now: float) -> list[Action]:
        if packet.type is PacketType.CONNECT:
            return self._connect(packet)
        socket = self.sockets.get(packet.nsp)
        if packet.type is PacketType.DISCONNECT:
            if socket is None:
                return []
            del self.sockets[packet.nsp]
            return [_closed(socket, final=True)]
        if socket is None:
            return self._close(CloseCode.POLICY, "packet for a namespace not connected")
        if packet.type is PacketType.EVENT:
            return self._event(socket, packet, now)
        return []  # the server never asks clients for acks, so a client ACK answers nothing

    def _connect(self, packet: Packet) -> list[Action]:
        if packet.nsp in self.sockets:
            return self._close(CloseCode.POLICY, "second CONNECT for a namespace")
        namespace = self._namespaces.get(packet.nsp)
        if namespace is None:
            return [connect_error(packet.nsp, {"message": "Invalid namespace"})]
        ctx = ConnectContext(packet.nsp, packet.data or {}, self._upgrade_identity,
                             self._verifier)
        for middleware in namespace.connect_chain:
            refusal = middleware(ctx)
            if refusal is not None:
                return [Observed(packet.nsp, CONNECT_EVENT, refusal.code),
                        connect_error(packet.nsp, {"message": refusal.message,
                                                    "data": {"code": refusal.code}})]
        if ctx.identity is None:
            return [connect_error(packet.nsp, {"message": "unauthorized",
                                                 "data": {"code": "unauthorized"}})]
        recovery = namespace.durable and ctx.auth.get("recovery", True) is not False
        socket = NamespaceSocket(packet.nsp, self._new_id(), ctx.identity,
                                 pid=self._new_id() if recovery else None,
                                 durable=namespace.durable)
        socket.rooms.add(user_room(ctx.identity.sub))
        self.sockets[packet.nsp] = socket
        self._connect_deadline = None
        return [Opened(socket, restore_request(ctx.auth) if recovery else None)]

    # --- I/O results: what the shell did comes back here, and the answer is built here ----

    def opened(self, socket: NamespaceSocket, recovered: Recovered | None = None) -> list[Action]:
        """The socket is admitted, in its rooms and (durable) its session saved or, with
        ``recovered``, restored: it takes the session's ids and rooms, and gets its reply."""
        if recovered is not None:
            socket.pid, socket.sid = recovered.pid, recovered.sid
            socket.rooms.clear()
            socket.rooms.update(recovered.rooms)
        return [Announce(socket), SendText(connect_reply(socket))]

    def refused(self, socket: NamespaceSocket) -> list[Action]:
        """The cluster-wide per-user limit refused the socket after its CONNECT."""
        if self.sockets.get(socket.nsp) is socket:
            del self.sockets[socket.nsp]
        return [too_many_connections(socket.nsp)]

    def joined(self, join: Join) -> list[Action]:
        """The room's messages reach the socket now (after any replay ``since`` asked for)."""
        join.socket.rooms.add(join.room)
        return [Announce(join.socket), *acknowledge(join.reply, {"ok": True, "room": join.room})]

    def join_failed(self, join: Join, why: JoinFailure) -> list[Action]:
        if why is JoinFailure.BACKLOG_TOO_LARGE:
            return io_failed(join.reply, ROOM_JOIN, ErrorCode.NOT_RECOVERABLE,
                              "backlog too large to replay; page it with room:history")
        return io_failed(join.reply, ROOM_JOIN, ErrorCode.UNAVAILABLE, "try again")

    def published(self, publish: Publish, result: PublishResult | None) -> list[Action]:
        """The broker's answer to a publish (``None``: not confirmed — not sent, refused, or
        its acknowledgement late; it may be stored, so the client retries with the same id,
        which the log de-duplicates)."""
        if result is None:
            return io_failed(publish.reply, None, ErrorCode.UNAVAILABLE,
                              "not confirmed, retry with the same id")
        if publish.message_id is None:
            return acknowledge(publish.reply, {"ok": True})
        return acknowledge(publish.reply, {"ok": True, "id": publish.message_id,
                                           "seq": result.seq, "duplicate": result.duplicate})

    def history_page(self, history: History, page: Page | None) -> list[Action]:
        """The log's page for ``room:history`` (``None``: nothing of the range is left)."""
        if page is None:
            return failed(history.reply, ROOM_HISTORY, Failure(
                ErrorCode.NOT_RECOVERABLE, "the log no longer reaches back there"))
        return acknowledge(history.reply, history_answer(page))

    def log_unavailable(self, request: History) -> list[Action]:
        """The log did not answer ``room:history``."""
        return io_failed(request.reply, ROOM_HISTORY, ErrorCode.UNAVAILABLE, "try again")

    def presence_answer(self, query: PresenceQuery,
                        members: dict[str, Any] | None) -> list[Action]:
        """The presence service's answer to ``room:presence`` (``None``: none came)."""
        if members is None:
            return io_failed(query.reply, ROOM_PRESENCE, ErrorCode.UNAVAILABLE,
                              "presence is not available; try again")
        return acknowledge(query.reply, members)

    def typing_routed(self, change: TypingChange) -> list[Action]:
        """The presence service took the typing notice (and sends the stop on silence)."""
        return acknowledge(change.reply, {"ok": True})

    def typing_unrouted(self, change: TypingChange) -> list[Action]:
        """No presence service (an in-memory gateway): the notice goes straight to the room."""
        name = TYPING_START if change.active else TYPING_STOP
        args = orjson.dumps([name, {"room": change.room, "user": change.socket.identity.sub}])
        return [Publish(change.socket, change.room, args, (), None, change.reply)]

    def kick(self, user: str, reason: str) -> list[Action]:
        """End, for good, this connection's sockets of ``user`` (and the transport if none
        is left): a bare server DISCONNECT each, as for abuse."""
        mine = [s for s in self.sockets.values() if s.identity.sub == user]
        if len(mine) == len(self.sockets):
            return self.disconnect_all(reason)
        return [action for socket in mine for action in self._end(socket)]

    def _event(self, socket: NamespaceSocket, packet: Packet, now: float) -> list[Action]:
        namespace = self._namespaces[socket.nsp]
        data: list[Any] = packet.data
        name = data[0]
        event = name if isinstance(name, str) else str(name)
        spec = namespace.events.get(event)
        reply = AckTo(socket.nsp, packet.id)
        ctx = EventContext(socket, event, data[1:], reply, now, self.config.limits, self._buckets,
                           self._wall_clock)
        for middleware in namespace.event_chain:
            failure = middleware(ctx, spec)
            if failure is not None:
                return self._failed(reply, event, failure)
        assert spec is not None
        result = spec.handler(ctx)
        if isinstance(result, Failure):
            return self._failed(reply, event, result)
        return [Observed(socket.nsp, event), *result]

    def _failed(self, reply: AckTo, event: str, failure: Failure) -> list[Action]:
        actions: list[Action] = [Observed(reply.nsp, event, failure.code.value),
                                 answer_failure(reply, event, failure)]
        if failure.code is ErrorCode.RATE_LIMITED and self._abusive(event):
            actions.extend(self.disconnect_all(f"abuse: kept sending {event} while rate limited"))
        return actions

    def _abusive(self, event: str) -> bool:
        spec = None
        for namespace in self._namespaces.values():
            spec = spec or namespace.events.get(event)
        limit = spec.limit if spec is not None else LimitClass.REQUEST
        meter = self._meters.get(limit)
        if meter is None:
            limits = self.config.limits
            rate = limits.chat_rate if limit is LimitClass.CHAT else limits.request_rate
            meter = self._meters[limit] = AbuseMeter.for_rate(rate, limits.abuse_factor)
        return meter.reject(self._now)

    def disconnect_all(self, reason: str) -> list[Action]:
        """End every namespace for good (a bare server DISCONNECT each: socket.io-client does
        not reconnect, and no session is kept), then the transport."""
        actions = [action for socket in list(self.sockets.values())
                   for action in self._end(socket)]
        actions.append(Close(CloseCode.POLICY, reason))
        return actions

    def _end(self, socket: NamespaceSocket) -> list[Action]:
        """A bare server DISCONNECT for one socket, and its session ended with it."""
        del self.sockets[socket.nsp]
        text, _ = encode_packet(Packet(PacketType.DISCONNECT, socket.nsp))
        return [SendText("4" + text), _closed(socket, final=True)]


def _closed(socket: NamespaceSocket, final: bool = False) -> Closed:
    """The socket ends: its rooms go with the action, for the shell to leave."""
    rooms = frozenset(socket.rooms)
    socket.rooms.clear()
    return Closed(socket, rooms, final)
