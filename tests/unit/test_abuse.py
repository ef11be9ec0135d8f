"""The abuse meter on a hand-moved clock: more than ``factor`` times the per-second limit of
rejections within the window ends the connection; rejections spread out never do."""

from __future__ import annotations

import pytest

from shared.abuse import AbuseMeter


def test_the_threshold_is_ten_times_the_per_second_limit() -> None:
    assert AbuseMeter.for_rate(5).threshold == 50
    assert AbuseMeter.for_rate(5).window == 10.0
    assert AbuseMeter.for_rate(2, factor=3, window=4).threshold == 6


@pytest.mark.parametrize("per_second", [0.0, 0.01, 0.05])
def test_a_tiny_limit_still_allows_one_rejection(per_second: float) -> None:
    meter = AbuseMeter.for_rate(per_second)
    assert meter.threshold == 1
    assert not meter.reject(0.0)
    assert meter.reject(0.0)


def test_more_than_ten_times_the_limit_within_ten_seconds_is_abuse() -> None:
    meter = AbuseMeter.for_rate(5)  # 50 rejections allowed within 10 s
    verdicts = [meter.reject(100.0 + i * 0.1) for i in range(51)]  # all within 5.1 s
    assert verdicts[:50] == [False] * 50
    assert verdicts[50] is True


def test_exactly_the_threshold_is_not_abuse() -> None:
    meter = AbuseMeter.for_rate(1)
    assert not any(meter.reject(0.5 * i) for i in range(10))


def test_rejections_older_than_the_window_no_longer_count() -> None:
    meter = AbuseMeter.for_rate(1)  # 10 within 10 s
    for i in range(10):
        assert not meter.reject(float(i))
    # the first one (t=0) leaves the window exactly at t=10: still 10 held, not 11
    assert not meter.reject(10.0)
    assert len(meter.rejections) == 10
    assert meter.reject(10.5)  # t=1 is still inside (10.5 - 10 = 0.5 < 1)


def test_a_steady_client_at_the_threshold_rate_is_never_abuse() -> None:
    meter = AbuseMeter.for_rate(2)  # 20 per 10 s
    assert not any(meter.reject(i * 0.5) for i in range(1_000))  # 2 per second for 500 s
    assert len(meter.rejections) <= meter.threshold


def test_a_burst_after_a_quiet_spell_starts_from_an_empty_window() -> None:
    meter = AbuseMeter.for_rate(1)
    for i in range(10):
        meter.reject(float(i) / 10)
    assert not meter.reject(100.0)
    assert list(meter.rejections) == [100.0]
