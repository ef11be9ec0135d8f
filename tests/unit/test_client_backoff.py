"""Reconnect delays: min(30 s, base * 2**attempt + random(0-1 s)), with the random source
injected so the schedule is exact."""

from __future__ import annotations

from itertools import islice

import pytest

from client.backoff import reconnect_delay, reconnect_delays


def test_delays_double_from_base_plus_jitter_until_the_cap() -> None:
    jitters = iter([0.0, 0.25, 0.5, 0.75, 0.1, 0.9, 0.0, 0.3, 0.2, 0.99])

    delays = list(islice(reconnect_delays(base=0.5, cap=30.0, random=lambda: next(jitters)),
                         10))

    assert delays == [0.5, 1.25, 2.5, 4.75, 8.1, 16.9, 30.0, 30.0, 30.0, 30.0]


def test_without_jitter_the_schedule_is_pure_doubling() -> None:
    delays = list(islice(reconnect_delays(base=1.0, cap=30.0, random=lambda: 0.0), 6))

    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0]


def test_jitter_is_within_one_second_of_the_exponential_part() -> None:
    highest = 0.999999
    delays = list(islice(reconnect_delays(base=0.2, cap=30.0, random=lambda: highest), 5))

    assert delays == pytest.approx([0.2 + highest, 0.4 + highest, 0.8 + highest,
                                    1.6 + highest, 3.2 + highest])


def test_the_cap_bounds_the_jitter_too() -> None:
    assert reconnect_delay(attempt=10, base=0.5, cap=30.0, jitter=0.9) == 30.0
    assert reconnect_delay(attempt=5, base=0.5, cap=30.0, jitter=0.9) == 16.9


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert reconnect_delay(attempt=100_000, base=0.5, cap=30.0, jitter=0.0) == 30.0


def test_each_outage_starts_a_fresh_schedule() -> None:
    first = list(islice(reconnect_delays(base=0.5, random=lambda: 0.0), 3))
    second = list(islice(reconnect_delays(base=0.5, random=lambda: 0.0), 3))

    assert first == second == [0.5, 1.0, 2.0]


@pytest.mark.parametrize(("attempt", "base", "cap"), [(-1, 0.5, 30.0)])
def test_negative_attempt_is_a_bug(attempt: int, base: float, cap: float) -> None:
    with pytest.raises(ValueError):
        reconnect_delay(attempt, base, cap, 0.0)
