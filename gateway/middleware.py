"""The links of the namespaces' chains: authentication on CONNECT; rate limit, known event
and schema on every EVENT. Each returns ``None`` to go on or a refusal/failure to stop."""

from __future__ import annotations

from gateway.pipeline import (
    ConnectContext,
    EventContext,
    EventSpec,
    Failure,
    LimitClass,
    Limits,
    Refusal,
)
from shared.protocol.errors import ErrorCode
from shared.ratelimit import TokenBucket
from shared.schemas import SchemaViolation

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
    return None if ctx.identity is not None else UNAUTHORIZED


def rate_limit(ctx: EventContext, spec: EventSpec | None) -> Failure | None:
    """Unknown events count against the request budget, so probing is throttled too."""
    limit = spec.limit if spec is not None else LimitClass.REQUEST
    return charge(ctx.buckets, ctx.limits, limit, ctx.now)


def charge(buckets: dict[LimitClass, TokenBucket], limits: Limits, limit: LimitClass,
           now: float) -> Failure | None:
    """Take one token from the connection's bucket for ``limit``."""
    bucket = buckets.get(limit)
    if bucket is None:
        rate, burst = (
            (limits.chat_rate, limits.chat_burst)
            if limit is LimitClass.CHAT
            else (limits.request_rate, limits.request_burst)
        )
        bucket = buckets[limit] = TokenBucket.full(rate, burst, now)
    wait_ms = bucket.take(now)
    if wait_ms:
        return Failure(ErrorCode.RATE_LIMITED, "rate limit exceeded", wait_ms)
    return None


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
