"""The collector's policy: start-up's objects frozen, no automatic full collection, and the
timer that runs one every period until stopped."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from shared.gc_policy import NO_AUTOMATIC_FULL, FullCollections, settle


@pytest.fixture
def restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_settling_collects_freezes_and_leaves_full_collections_to_the_timer(
        restored: None) -> None:
    young, middle, _ = gc.get_threshold()
    collected: list[bool] = []

    settle(lambda: collected.append(True))

    assert collected == [True]
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (young, middle, NO_AUTOMATIC_FULL)


async def test_a_full_collection_runs_every_period_until_stopped() -> None:
    three = asyncio.Event()
    runs: list[int] = []

    def collect() -> None:
        runs.append(1)
        if len(runs) == 3:
            three.set()

    collections = FullCollections(0.01, collect)
    collections.start()
    await asyncio.wait_for(three.wait(), 10)
    collections.stop()
    seen = len(runs)
    await asyncio.sleep(0.05)

    assert seen == len(runs) == 3
    collections.stop()
