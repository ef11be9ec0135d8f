"""A connection's request limits and the buckets that enforce them.

Two classes of event share two token buckets per connection (chat events and request-like
ones), so a flood of one kind cannot starve the other; the numbers are the contract's
defaults, each configurable.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from gateway.replies import Failure
from shared.presence_wire import TYPING_REFRESH_S
from shared.protocol.errors import ErrorCode
from shared.ratelimit import TokenBucket


class LimitClass(Enum):
    CHAT = "chat"
    REQUEST = "request"


@dataclass(frozen=True, slots=True)
class Limits:
    chat_rate: float = 100.0
    chat_burst: int = 100
    request_rate: float = 10.0
    request_burst: int = 20
    attachment_max_bytes: int = 262_144
    max_rooms: int = 100
    abuse_factor: float = 10.0
    typing_coalesce_s: float = TYPING_REFRESH_S


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
