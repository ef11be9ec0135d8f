"""The one prev-chain verdict (shared/chain.py) the gateway's feed and the SDK's tracker share."""

from __future__ import annotations

import pytest

from shared.chain import DUPLICATE, NEW, Gap, observe


def test_nothing_known_of_the_room_means_nothing_can_be_missing() -> None:
    assert observe(None, 7, 5) is NEW
    assert observe(None, 1, 0) is NEW


def test_the_next_message_chains_on() -> None:
    assert observe(5, 7, 5) is NEW


def test_a_prev_below_the_last_held_hides_nothing() -> None:
    assert observe(5, 9, 3) is NEW
    assert observe(5, 9, 0) is NEW


@pytest.mark.parametrize(("last", "seq"), [(5, 5), (5, 4), (5, 1)])
def test_at_or_below_the_last_held_is_a_duplicate(last: int, seq: int) -> None:
    assert observe(last, seq, seq - 1) is DUPLICATE


def test_a_prev_above_the_last_held_names_the_hole() -> None:
    assert observe(5, 12, 9) == Gap(after=5, before=12)


def test_a_duplicate_wins_over_a_gap() -> None:
    assert observe(10, 9, 8) is DUPLICATE
