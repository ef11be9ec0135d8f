"""What the memory store adds to the contract (``test_presence_store_contract.py``): expiry
runs on the injected clock, with the TTLs rounded as JetStream rounds them, and a follower
that is waiting wakes on the next write."""

from __future__ import annotations

import asyncio

import pytest

from presence.memory_store import MemoryPresenceStore
from presence.store import ALIVE, Change, ttl_seconds
from tests.support.fake_clock import FakeClock
from tests.support.timing import UNIT


@pytest.mark.parametrize(("asked", "applied"), [(0.2, 1.0), (1.0, 1.0), (2.4, 2.0), (2.6, 3.0)])
def test_ttls_are_whole_seconds_and_at_least_one(asked: float, applied: float) -> None:
    assert ttl_seconds(asked) == applied


async def test_keys_expire_only_when_the_clock_has_passed_their_ttl() -> None:
    clock = FakeClock()
    store = MemoryPresenceStore(clock, tombstone_ttl=60.0, typing_ttl=5.0)
    await store.beat("p1", 0.4)  # rounded up to one second

    clock.now += 0.9
    assert store.expire() == 0
    clock.now += 0.1
    assert store.expire() == 1
    assert store.expire() == 0


async def test_a_waiting_follower_wakes_on_the_next_write() -> None:
    store = MemoryPresenceStore(FakeClock(), tombstone_ttl=60.0, typing_ttl=5.0)
    changes = store.follow()
    assert await anext(changes) is None

    pending = asyncio.ensure_future(anext(changes))
    await asyncio.sleep(0)
    assert not pending.done()
    await store.beat("p1", 3.0)

    async with asyncio.timeout(5 * UNIT):
        assert await pending == Change("r", ("p1",), ALIVE)
    await changes.aclose()  # type: ignore[attr-defined]
