"""The one retry schedule (shared/backoff.py): exact pauses for an injected random draw."""

from __future__ import annotations

import math
from itertools import islice

import pytest

from shared.backoff import CAS_RACE, Backoff


def test_doubling_from_the_base_until_the_cap() -> None:
    pauses = list(Backoff(base=0.25, cap=2.0).delays(random=lambda: 0.0, attempts=6))

    assert pauses == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]


def test_attempts_bound_a_run_and_without_them_it_is_endless() -> None:
    backoff = Backoff(base=0.05, cap=2.0)

    assert len(list(backoff.delays(attempts=8))) == 8
    assert len(list(islice(backoff.delays(), 1000))) == 1000


def test_additive_jitter_is_added_then_capped() -> None:
    draws = iter([0.0, 0.5, 0.9, 0.9])
    backoff = Backoff(base=0.5, cap=2.0, jitter=1.0)

    assert list(backoff.delays(random=lambda: next(draws), attempts=4)) == [0.5, 1.5, 2.0, 2.0]


def test_full_jitter_draws_below_the_grown_pause() -> None:
    backoff = Backoff(base=1.0, cap=10.0, full_jitter=True)

    assert backoff.delay(0, 0.5) == 0.5
    assert backoff.delay(2, 0.5) == 2.0
    assert backoff.delay(5, 0.999) == 10.0 * 0.999  # uniform below the cap, not piled on it


def test_a_linear_schedule_grows_by_its_step() -> None:
    backoff = Backoff(base=1.0, factor=1.0, step=0.5)

    assert [backoff.delay(attempt) for attempt in range(4)] == [1.0, 1.5, 2.0, 2.5]


@pytest.mark.parametrize("attempt", [0, 1, 5, 19, 49])
def test_the_cas_race_pause_stays_below_two_ms_an_attempt(attempt: int) -> None:
    assert CAS_RACE.delay(attempt, 0.0) == 0.0
    assert CAS_RACE.delay(attempt, 0.999999) <= 0.002 * (attempt + 1)
    assert CAS_RACE.delay(attempt, 0.5) == pytest.approx(0.001 * (attempt + 1))


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert Backoff(base=0.5, cap=30.0).delay(100_000) == 30.0
    assert Backoff(base=0.5).delay(100_000) == 0.5 * 2.0**64


def test_an_uncapped_schedule_keeps_growing() -> None:
    assert Backoff(base=1.0).cap == math.inf
    assert Backoff(base=1.0).delay(10) == 1024.0


@pytest.mark.parametrize("attempt", [-1, -10])
def test_a_negative_attempt_is_a_bug(attempt: int) -> None:
    with pytest.raises(ValueError):
        Backoff(base=1.0).delay(attempt)


@pytest.mark.parametrize("fields", [{"base": -1.0}, {"base": 1.0, "cap": -1.0},
                                    {"base": 1.0, "factor": 0.5}, {"base": 1.0, "step": -1.0},
                                    {"base": 1.0, "jitter": -0.1}])
def test_a_shrinking_or_negative_schedule_is_refused(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**fields)  # type: ignore[arg-type]
