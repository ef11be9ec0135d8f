"""A namespace's middleware chains: the types they are made of, and their links.

A CONNECT runs the namespace's connect chain (authentication); an EVENT runs its event chain
(rate limit, known event, schema) and then the event's handler. Every link is a plain
function of a context that returns ``None`` to go on or a refusal/failure to stop, so chains
are declared as data in :mod:`gateway.namespaces` and tested by calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.actions import AckTo, Action, NamespaceSocket
from gateway.limits import LimitClass, Limits, charge
from gateway.replies import Failure
from shared.jwtauth import Identity, TokenVerifier
from shared.namespaces import NamespaceSpec
from shared.protocol.errors import ErrorCode
from shared.ratelimit import TokenBucket
from shared.schemas import SchemaViolation


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refused CONNECT: becomes CONNECT_ERROR ``{message, data: {code}}``."""

    message: str
    code: str


@dataclass(slots=True)
class ConnectContext:
    nsp: str
    auth: dict[str, Any]
    upgrade_identity: Identity | None
    verifier: TokenVerifier
    identity: Identity | None = None
    optional: bool = False
    """``auth = "hook"``: no token is no refusal (the connect hook decides); a bad one is."""


@dataclass(slots=True)
class EventContext:
    socket: NamespaceSocket
    event: str
    args: list[Any]
    reply: AckTo
    now: float
    limits: Limits
    buckets: dict[LimitClass, TokenBucket]
    wall_clock: Callable[[], float]
    """Unix seconds, for the ``ts`` a message carries (``now`` is the monotonic clock)."""

    @property
    def payload(self) -> Any:
        return self.args[0] if self.args else None


ConnectMiddleware = Callable[[ConnectContext], Refusal | None]
EventMiddleware = Callable[[EventContext, "EventSpec | None"], Failure | None]
Handler = Callable[[EventContext], "list[Action] | Failure"]
Validator = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class EventSpec:
    handler: Handler
    limit: LimitClass
    validate: Validator | None = None


@dataclass(frozen=True, slots=True)
class Namespace:
    name: str
    durable: bool
    connect_chain: tuple[ConnectMiddleware, ...]
    event_chain: tuple[EventMiddleware, ...]
    events: Mapping[str, EventSpec] = field(default_factory=dict)
    spec: NamespaceSpec | None = None
    """The namespace's table entry: its auth, hook and event-bucket keys (application events)."""


UNAUTHORIZED = Refusal("unauthorized", "unauthorized")


def authenticate(ctx: ConnectContext) -> Refusal | None:
    """A token in the CONNECT ``auth`` wins; else the identity proven on the upgrade. The
    token the upgrade already carried (socket.io-client sends it both ways) is not
    verified again."""
    token = ctx.auth.get("token")
    if token is not None:
        ctx.identity = ctx.verifier.verify(token, known=ctx.upgrade_identity)
    else:
        ctx.identity = ctx.upgrade_identity
    return None if ctx.identity is not None or (ctx.optional and token is None) else UNAUTHORIZED


def rate_limit(ctx: EventContext, spec: EventSpec | None) -> Failure | None:
    """Unknown events count against the request budget, so probing is throttled too."""
    limit = spec.limit if spec is not None else LimitClass.REQUEST
    return charge(ctx.buckets, ctx.limits, limit, ctx.now)


def known_event(ctx: EventContext, spec: EventSpec | None) -> Failure | None:
    if spec is None:
        return Failure(ErrorCode.UNKNOWN_EVENT, f"unknown event in {ctx.socket.nsp}")
    return None


def validate_schema(ctx: EventContext, spec: EventSpec | None) -> Failure | None:
    if spec is None or spec.validate is None:
        return None
    if len(ctx.args) != 1:
        return Failure(ErrorCode.BAD_REQUEST, "expected exactly one payload object")
    try:
        ctx.args[0] = spec.validate(ctx.args[0])
    except SchemaViolation as exc:
        code = ErrorCode.TOO_LARGE if exc.too_large else ErrorCode.BAD_REQUEST
        return Failure(code, exc.message)
    return None
