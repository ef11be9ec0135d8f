"""Application hooks in the session core: which events go to the application, in what order,
and what a reply (or its absence) turns into. Pure: the shell sends each :class:`HookCall`
and feeds the outcome back (``Session.hook_answered``), which lands here.

One socket's requests keep their order: at most ``hook_concurrency`` are in flight per socket
and namespace, the rest wait in order and go as slots free (a reply, a timeout or a failure
frees one). Gateway-side refusals (reserved name, the event bucket, size) are decided before
anything leaves and answered like every other event (an error ack, or ``request:error``
without one); what becomes of a request that left (the application's error, ``timeout``,
``unavailable``, ``overloaded``, a malformed reply as ``internal``) is an error ack when the
client asked for one, and for an event without an ack only counted.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import orjson

from gateway import hook_wire
from gateway.actions import (
    AckTo,
    Action,
    Announce,
    Failed,
    HookCall,
    HookFailure,
    HookFinish,
    HookObserved,
    Join,
    Leave,
    NamespaceSocket,
    Publish,
)
from gateway.middleware import ConnectContext
from gateway.replies import (
    IO_RETRY_AFTER_MS,
    Failure,
    ack_args,
    answer_failure,
    connect_error,
    emit_frames,
)
from shared.jwtauth import Identity
from shared.namespaces import NamespaceSpec
from shared.protocol.errors import ErrorCode
from shared.protocol.events import RESERVED
from shared.protocol.packets import deconstruct
from shared.ratelimit import TokenBucket
from shared.subjects import user_room

DEFAULT_ROOMS = ("room:*",)
EVENT = "event"
CONNECT = "connect"
_FAILURE_MESSAGES = {
    HookFailure.UNAVAILABLE: "no application worker is available; try again",
    HookFailure.TIMEOUT: "the application did not answer in time",
    HookFailure.OVERLOADED: "the gateway has too many application requests in flight",
}


class HasSpec(Protocol):
    @property
    def spec(self) -> NamespaceSpec | None: ...


@dataclass(frozen=True, slots=True)
class EventRequest:
    """What a hooked event needs beyond the socket: who asks and the request's limits."""

    gateway: str
    fallback_id: str
    max_bytes: int


def admit_event(socket: NamespaceSocket, spec: NamespaceSpec, name: Any, args: list[Any],
                reply: AckTo, now: float, request: EventRequest) -> HookCall | Failure:
    """The checks before an event may leave: its name, the namespace's event bucket, the
    encoded request's size."""
    if not isinstance(name, str) or not 0 < len(name) <= hook_wire.EVENT_NAME_MAX:
        return Failure(ErrorCode.BAD_REQUEST,
                       f"event names are strings of 1-{hook_wire.EVENT_NAME_MAX} characters")
    if name in RESERVED:
        return Failure(ErrorCode.BAD_REQUEST, f"{name!r} is reserved by Socket.IO")
    if socket.hook_bucket is None:
        socket.hook_bucket = TokenBucket.full(spec.event_rate, spec.event_burst, now)
    wait_ms = socket.hook_bucket.take(now)
    if wait_ms:
        return Failure(ErrorCode.RATE_LIMITED, "rate limit exceeded", wait_ms)
    user = socket.identity.sub
    key = hook_wire.idempotency_id(user, args, request.fallback_id)
    try:
        body = hook_wire.event_request(spec.name, name, args, reply.id is not None, socket.sid,
                                       key, user, socket.data, request.gateway)
    except TypeError:
        return Failure(ErrorCode.BAD_REQUEST, "arguments nested too deeply")
    if len(body) > request.max_bytes:
        return Failure(ErrorCode.TOO_LARGE, f"event over {request.max_bytes} bytes encoded")
    return HookCall(spec.name, name, body, spec.hook_timeout_ms, socket, reply)


def enqueue(call: HookCall, concurrency: int) -> list[Action]:
    """Send now if the socket has a free slot, else wait behind its earlier requests."""
    socket = call.socket
    assert socket is not None
    if socket.hook_in_flight < concurrency:
        socket.hook_in_flight += 1
        return [call]
    if socket.hook_waiting is None:
        socket.hook_waiting = deque()
    socket.hook_waiting.append(call)
    return []


def release(socket: NamespaceSocket) -> list[Action]:
    """A request of the socket was answered: its slot goes to the next waiting one."""
    socket.hook_in_flight -= 1
    waiting = socket.hook_waiting
    if not waiting:
        return []
    socket.hook_in_flight += 1
    return [waiting.popleft()]


def event_answered(call: HookCall,
                   outcome: bytes | HookFailure) -> tuple[list[Action], bool]:
    """The application's reply (or its absence) as the socket's actions, in the contract's
    order: joins and leaves, publishes, then (once those are answered, see :func:`finish`)
    the ack and the emits; and whether the socket is to be disconnected now."""
    socket, reply, event = call.socket, call.reply, call.event
    assert socket is not None and reply is not None and event is not None
    if isinstance(outcome, HookFailure):
        retry = None if outcome is HookFailure.TIMEOUT else IO_RETRY_AFTER_MS
        return [HookObserved(call.nsp, EVENT, event, outcome.value), *_failure(
            reply, event, Failure(ErrorCode(outcome.value), _FAILURE_MESSAGES[outcome],
                                  retry))], False
    plan = hook_wire.event_reply(outcome)
    if isinstance(plan, hook_wire.Malformed):
        return [HookObserved(call.nsp, EVENT, event, ErrorCode.INTERNAL.value), *_failure(
            reply, event, Failure(ErrorCode.INTERNAL, f"malformed hook reply: {plan.detail}"))
        ], False
    if isinstance(plan, hook_wire.AppError):
        return [HookObserved(call.nsp, EVENT, event, "error"), Failed(call.nsp, "application"),
                *ack_args(reply, [plan.body()])], False
    actions = [HookObserved(call.nsp, EVENT, event, "ok"), *_side_effects(socket, reply, plan)]
    return actions, plan.disconnect and not plan.publish


def publish_answered(done: HookFinish, result: object | None) -> bool:
    """One publish of a reply was answered (``None``: not confirmed); ``True`` once all
    were, so the rest of the reply is due."""
    done.pending -= 1
    done.failed = done.failed or result is None
    return done.pending == 0


def _failure(reply: AckTo, event: str, failure: Failure) -> list[Action]:
    """Counted always; answered only when the client asked for an ack."""
    counted = Failed(reply.nsp, failure.code.value)
    return [counted, answer_failure(reply, event, failure)] if reply.id is not None else [counted]


def _side_effects(socket: NamespaceSocket, reply: AckTo,
                  plan: hook_wire.EventPlan) -> list[Action]:
    if plan.replace_data:
        socket.data = plan.data
    silent = AckTo(socket.nsp, None)
    actions: list[Action] = [Join(socket, room, silent) for room in dict.fromkeys(plan.join)
                             if room not in socket.rooms]
    own = user_room(socket.identity.sub)
    left = [room for room in dict.fromkeys(plan.leave) if room in socket.rooms and room != own]
    for room in left:
        socket.rooms.discard(room)  # the shell leaves the feed before anything later goes
        actions.append(Leave(socket, room, silent))
    if left:
        actions.append(Announce(socket))
    done = HookFinish(socket, reply, plan.ack, plan.emit, plan.disconnect, len(plan.publish))
    for item in plan.publish:
        attachments: list[bytes] = []
        body = deconstruct([item.event, {**item.data, "room": item.room}], attachments)
        actions.append(Publish(socket, item.room, orjson.dumps(body), tuple(attachments), None,
                               silent, logged=socket.durable, after=done))
    if not plan.publish:
        actions.extend(finish(done))
    return actions


def finish(done: HookFinish) -> list[Action]:
    """The ack (an ``unavailable`` error if a publish of the reply was not confirmed) and
    the emits; the session adds the disconnect."""
    if done.failed:
        actions = _failure(done.reply, "publish", Failure(
            ErrorCode.UNAVAILABLE, "a publish of the reply was not confirmed",
            IO_RETRY_AFTER_MS))
    else:
        actions = ack_args(done.reply, done.ack)
    for emit in done.emit:
        actions.extend(emit_frames(done.socket.nsp, emit))
    return actions


# --- the connect hook -------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class PendingConnect:
    """A CONNECT waiting for the connect hook's answer."""

    call: HookCall
    sid: str
    identity: Identity | None
    auth: dict[str, Any]


def kept_headers(namespaces: Iterable[HasSpec], headers: Mapping[str, str]) -> dict[str, str]:
    """The upgrade headers some namespace passes to its connect hook (names lower-cased):
    only those are kept with the session."""
    wanted = {name.lower() for namespace in namespaces if namespace.spec is not None
              for name in namespace.spec.hook_headers}
    if not wanted:
        return {}
    return {name.lower(): value for name, value in headers.items() if name.lower() in wanted}


def claims_of(identity: Identity) -> dict[str, Any]:
    """The verified token's claims as the connect hook sees them."""
    claims: dict[str, Any] = {"sub": identity.sub, "rooms": list(identity.room_patterns)}
    if identity.name is not None:
        claims["name"] = identity.name
    if math.isfinite(identity.expires_at):
        claims["exp"] = int(identity.expires_at)
    return claims


def connect_call(spec: NamespaceSpec, sid: str, request_id: str, ctx: ConnectContext,
                 headers: dict[str, str], gateway: str) -> PendingConnect:
    """The connect request for a CONNECT that passed the namespace's chain (``ctx``)."""
    identity, auth = ctx.identity, ctx.auth
    allowed = {name.lower() for name in spec.hook_headers}
    shown = {name: value for name, value in headers.items() if name.lower() in allowed}
    user = None if identity is None else identity.sub
    claims = None if identity is None else claims_of(identity)
    try:
        body = hook_wire.connect_request(spec.name, sid, request_id, user, claims, auth, shown,
                                         gateway)
    except TypeError:  # an auth payload nested past what JSON encoding takes
        body = hook_wire.connect_request(spec.name, sid, request_id, user, claims, {}, shown,
                                         gateway)
    return PendingConnect(HookCall(spec.name, None, body, spec.hook_timeout_ms), sid, identity,
                          auth)


@dataclass(frozen=True, slots=True)
class Admitted:
    """The connect hook let the socket in: who it is and what the reply asked for."""

    identity: Identity
    join: list[str]
    emit: list[list[Any]]
    data: Any


def connect_answered(pending: PendingConnect,
                     outcome: bytes | HookFailure) -> Admitted | list[Action] | None:
    """``None``: the hook could not be reached (the session closes the transport with
    1013, so the client retries); a list: the CONNECT_ERROR to send."""
    nsp = pending.call.nsp
    if isinstance(outcome, HookFailure):
        return None
    plan = hook_wire.connect_reply(outcome)
    if isinstance(plan, hook_wire.AppError):
        body: dict[str, Any] = {"message": plan.message}
        if plan.has_data:
            body["data"] = plan.data
        return [HookObserved(nsp, CONNECT, CONNECT, "error"), connect_error(nsp, body)]
    identity = pending.identity
    if isinstance(plan, hook_wire.ConnectPlan) and identity is None and plan.user is None:
        plan = hook_wire.Malformed("user is required when the client sent no token")
    if isinstance(plan, hook_wire.Malformed):
        return [HookObserved(nsp, CONNECT, CONNECT, ErrorCode.INTERNAL.value), connect_error(
            nsp, {"message": f"malformed connect hook reply: {plan.detail}",
                  "data": {"code": ErrorCode.INTERNAL.value}})]
    if identity is None:
        assert plan.user is not None
        identity = Identity(plan.user, None, plan.rooms or DEFAULT_ROOMS, math.inf)
    elif plan.rooms is not None:
        identity = replace(identity, room_patterns=plan.rooms)
    return Admitted(identity, plan.join, plan.emit, plan.data)


def unreachable(outcome: HookFailure, nsp: str) -> HookObserved:
    return HookObserved(nsp, CONNECT, CONNECT, outcome.value)


def observed_ok(call: HookCall) -> HookObserved:
    return HookObserved(call.nsp, CONNECT if call.event is None else EVENT,
                        call.event or CONNECT, "ok")

