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

from gateway import hooks
from gateway.actions import (
    CONNECT_EVENT,
    AckTo,
    Action,
    Close,
    Closed,
    HookCall,
    HookFailure,
    NamespaceSocket,
    Observed,
    Opened,
    Publish,
    SendText,
)
from gateway.broker import PublishResult
from gateway.limits import LimitClass, Limits, charge
from gateway.middleware import ConnectContext, EventContext, Namespace
from gateway.recovery import restore_request
from gateway.replies import (
    Failure,
    answer_failure,
    connect_error,
)
from gateway.session_answers import Answers
from gateway.session_handoff import Handoff
from shared.abuse import AbuseMeter
from shared.heartbeat import Beat, Heartbeat
from shared.jwtauth import Identity, TokenVerifier
from shared.protocol.engineio import PING_FRAME, EioType, InvalidFrame, encode_open, parse_frame
from shared.protocol.errors import CloseCode, ErrorCode
from shared.protocol.packets import (
    BinaryAssembler,
    InvalidPacket,
    Packet,
    PacketType,
    encode_packet,
    parse_packet,
)
from shared.ratelimit import TokenBucket
from shared.subjects import user_room


@dataclass(frozen=True, slots=True)
class SessionConfig:
    ping_interval_ms: int = 25_000
    ping_timeout_ms: int = 5_000
    ping_misses: int = 2
    max_payload: int = 1_000_000
    connect_timeout_ms: int = 45_000
    limits: Limits = field(default_factory=Limits)
    gateway: str = ""
    """This gateway's id, in every hook request."""
    hook_request_max_bytes: int = 1_000_000


class Session(Answers, Handoff):
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
        headers: Mapping[str, str] | None = None,
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
        self._headers = hooks.kept_headers(namespaces.values(), headers or {})
        self._connecting: dict[str, hooks.PendingConnect] = {}
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
        self._connecting.clear()
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
        if packet.nsp in self.sockets or packet.nsp in self._connecting:
            return self._close(CloseCode.POLICY, "second CONNECT for a namespace")
        namespace = self._namespaces.get(packet.nsp)
        if namespace is None:
            return [connect_error(packet.nsp, {"message": "Invalid namespace"})]
        spec = namespace.spec
        hooked = spec is not None and (spec.auth == "hook" or spec.hooks)
        ctx = ConnectContext(packet.nsp, packet.data or {}, self._upgrade_identity,
                             self._verifier, optional=spec is not None and spec.auth == "hook")
        for middleware in namespace.connect_chain:
            refusal = middleware(ctx)
            if refusal is not None:
                return [Observed(packet.nsp, CONNECT_EVENT, refusal.code),
                        connect_error(packet.nsp, {"message": refusal.message,
                                                    "data": {"code": refusal.code}})]
        if spec is not None and hooked:
            pending = hooks.connect_call(spec, self._new_id(), self._new_id(), ctx,
                                         self._headers, self.config.gateway)
            self._connecting[packet.nsp] = pending
            self._connect_deadline = None
            return [pending.call]
        if ctx.identity is None:
            return [connect_error(packet.nsp, {"message": "unauthorized",
                                                 "data": {"code": "unauthorized"}})]
        return self._admit(namespace, ctx.identity, ctx.auth, self._new_id())

    def _admit(self, namespace: Namespace, identity: Identity, auth: dict[str, Any], sid: str,
               hook: hooks.Admitted | None = None) -> list[Action]:
        recovery = namespace.durable and auth.get("recovery", True) is not False
        socket = NamespaceSocket(namespace.name, sid, identity,
                                 pid=self._new_id() if recovery else None,
                                 durable=namespace.durable)
        socket.rooms.add(user_room(identity.sub))
        if hook is not None:
            socket.rooms.update(hook.join)  # trusted: joined with the user room, before the reply
            socket.data, socket.hook_emit = hook.data, hook.emit or None
        self.sockets[namespace.name] = socket
        self._connect_deadline = None
        return [Opened(socket, restore_request(auth) if recovery else None)]

    # --- application hooks: requests out, replies (or their absence) back in --------------

    def hook_answered(self, call: HookCall, outcome: bytes | HookFailure) -> list[Action]:
        """What the application answered ``call`` (a :class:`HookFailure` when nothing did).
        A reply for a socket or CONNECT that has gone meanwhile is dropped."""
        if call.event is None:
            return self._connect_answered(call, outcome)
        socket = call.socket
        if socket is None or self.sockets.get(socket.nsp) is not socket:
            return []
        actions, disconnect = hooks.event_answered(call, outcome)
        if disconnect:
            actions.extend(self._end(socket))
        return [*actions, *hooks.release(socket)]

    def _connect_answered(self, call: HookCall, outcome: bytes | HookFailure) -> list[Action]:
        pending = self._connecting.get(call.nsp)
        if pending is None or pending.call is not call:
            return []
        del self._connecting[call.nsp]
        result = hooks.connect_answered(pending, outcome)
        if result is None:
            assert isinstance(outcome, HookFailure)
            return [hooks.unreachable(outcome, call.nsp),
                    *self._close(CloseCode.TRY_AGAIN_LATER, "connect hook unreachable")]
        if isinstance(result, list):
            return result
        return [hooks.observed_ok(call), *self._admit(
            self._namespaces[call.nsp], result.identity, pending.auth, pending.sid, result)]

    def _hooked_event(self, socket: NamespaceSocket, namespace: Namespace, name: Any,
                      args: list[Any], reply: AckTo, now: float) -> list[Action]:
        spec = namespace.spec
        assert spec is not None
        call = hooks.admit_event(socket, spec, name, args, reply, now, hooks.EventRequest(
            self.config.gateway, self._new_id(), self.config.hook_request_max_bytes))
        event = name if isinstance(name, str) else str(name)
        if isinstance(call, Failure):
            return self._failed(reply, event, call)
        return [Observed(socket.nsp, event), *hooks.enqueue(call, spec.hook_concurrency)]

    def published(self, publish: Publish, result: PublishResult | None) -> list[Action]:
        done = publish.after
        if done is None:
            return super().published(publish, result)
        if not hooks.publish_answered(done, result) or (
                self.sockets.get(done.socket.nsp) is not done.socket):
            return []
        actions = hooks.finish(done)
        return [*actions, *self._end(done.socket)] if done.disconnect else actions

    # --- I/O results: what the shell did comes back here, and the answer is built here ----

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
        if spec is None and namespace.spec is not None and namespace.spec.hooks:
            return self._hooked_event(socket, namespace, name, data[1:], reply, now)
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

