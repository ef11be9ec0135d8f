"""A connection's two buckets (``gateway/limits.py``): chat and request-like events are
charged apart, and an empty bucket says how long to wait."""

from __future__ import annotations

from gateway.limits import LimitClass, Limits, charge
from shared.protocol.errors import ErrorCode
from shared.ratelimit import TokenBucket

LIMITS = Limits(chat_rate=10.0, chat_burst=2, request_rate=1.0, request_burst=1)


def test_a_bucket_is_made_full_on_first_use_and_runs_dry() -> None:
    buckets: dict[LimitClass, TokenBucket] = {}

    assert charge(buckets, LIMITS, LimitClass.CHAT, 0.0) is None
    assert charge(buckets, LIMITS, LimitClass.CHAT, 0.0) is None
    failure = charge(buckets, LIMITS, LimitClass.CHAT, 0.0)

    assert failure is not None and failure.code is ErrorCode.RATE_LIMITED
    assert failure.retry_after_ms == 100  # one token at 10/s


def test_chat_and_requests_are_charged_apart() -> None:
    buckets: dict[LimitClass, TokenBucket] = {}

    assert charge(buckets, LIMITS, LimitClass.REQUEST, 0.0) is None
    assert charge(buckets, LIMITS, LimitClass.REQUEST, 0.0) is not None
    assert charge(buckets, LIMITS, LimitClass.CHAT, 0.0) is None


def test_a_dry_bucket_refills_with_time() -> None:
    buckets: dict[LimitClass, TokenBucket] = {}
    charge(buckets, LIMITS, LimitClass.REQUEST, 0.0)

    assert charge(buckets, LIMITS, LimitClass.REQUEST, 0.5) is not None
    assert charge(buckets, LIMITS, LimitClass.REQUEST, 1.5) is None
