"""Token bucket: a burst, then refill at ``rate`` per second; a refusal says how long to wait.

Rates and times are powers of two so the arithmetic is exact in binary floating point.
"""

from __future__ import annotations

from shared.ratelimit import TokenBucket


def test_burst_then_refused_with_the_wait_for_one_token() -> None:
    bucket = TokenBucket.full(rate=4.0, burst=8, now=0.0)

    assert [bucket.take(0.0) for _ in range(8)] == [0] * 8
    assert bucket.take(0.0) == 250  # one token at 4/s


def test_refill_over_time() -> None:
    bucket = TokenBucket.full(rate=4.0, burst=8, now=0.0)
    for _ in range(8):
        bucket.take(0.0)

    assert bucket.take(0.125) == 125  # half a token there, half to go
    assert bucket.take(0.25) == 0
    assert bucket.take(0.25) == 250


def test_refill_is_capped_at_the_burst() -> None:
    bucket = TokenBucket.full(rate=4.0, burst=8, now=0.0)
    for _ in range(8):
        bucket.take(0.0)

    results = [bucket.take(1000.0) for _ in range(9)]

    assert results == [0] * 8 + [250]


def test_contract_request_limit_is_twenty_then_ten_per_second() -> None:
    bucket = TokenBucket.full(rate=10.0, burst=20, now=5.0)

    assert [bucket.take(5.0) for _ in range(20)] == [0] * 20
    assert bucket.take(5.0) == 100


def test_cost_above_one() -> None:
    bucket = TokenBucket.full(rate=2.0, burst=4, now=0.0)

    assert bucket.take(0.0, cost=3) == 0
    assert bucket.take(0.0, cost=3) == 1000  # two tokens missing at 2/s


def test_wait_is_at_least_one_ms() -> None:
    bucket = TokenBucket(rate=1_000_000.0, burst=1, tokens=0.9999999, updated=0.0)

    assert bucket.take(0.0) == 1


def test_zero_rate_never_refills() -> None:
    bucket = TokenBucket.full(rate=0.0, burst=1, now=0.0)
    bucket.take(0.0)

    assert bucket.take(10**6) == 2**31 - 1


def test_clock_going_backwards_neither_refills_nor_breaks() -> None:
    bucket = TokenBucket.full(rate=4.0, burst=1, now=10.0)
    bucket.take(10.0)

    assert bucket.take(5.0) == 250
    assert bucket.take(10.25) == 0
