"""Reaping a dead gateway's registry entries, on fakes: only entries that hold it are
rewritten, failures are counted not raised, a gateway that came back is left alone."""

from __future__ import annotations

import asyncio

from router.reaper import Reaper, holds
from shared.registry import ConnectionInfo, UserEntry, drop_gateway
from shared.registry_kv import RegistryUnavailable


def entry(*gateways: str) -> UserEntry:
    return UserEntry({f"c{i}": ConnectionInfo(gw, ("/chat",), float(i))
                      for i, gw in enumerate(gateways)})


class Store:
    def __init__(self, entries: dict[str, UserEntry]) -> None:
        self.entries = entries
        self.writes: list[str] = []
        self.failing: set[str] = set()
        self.live: set[str] = set()

    async def users(self) -> list[str]:
        return sorted(self.entries)

    async def entry(self, user: str) -> UserEntry:
        await asyncio.sleep(0)
        return self.entries[user]

    async def drop(self, user: str, gateway: str) -> None:
        if user in self.failing:
            raise RegistryUnavailable("down")
        self.writes.append(user)
        self.entries[user] = drop_gateway(self.entries[user], gateway)

    def reaper(self) -> Reaper:
        return Reaper(self.users, self.entry, self.drop, lambda gw: gw in self.live,
                      concurrency=3)


def test_holds() -> None:
    assert holds(entry("a", "b"), "b")
    assert not holds(entry("a"), "b")
    assert not holds(UserEntry(), "b")


async def test_only_entries_holding_the_gateway_are_rewritten() -> None:
    store = Store({f"u{i}": entry("dead" if i % 3 == 0 else "alive", "alive")
                   for i in range(20)})
    dropped, failed = await store.reaper().reap("dead")
    assert (dropped, failed) == (7, 0)
    assert sorted(store.writes) == sorted(f"u{i}" for i in range(0, 20, 3))
    assert not any(holds(e, "dead") for e in store.entries.values())
    assert all(holds(e, "alive") for e in store.entries.values())


async def test_failures_are_counted_and_the_rest_goes_on() -> None:
    store = Store({"a": entry("dead"), "b": entry("dead"), "c": entry("dead")})
    store.failing = {"b"}
    assert await store.reaper().reap("dead") == (2, 1)


async def test_a_gateway_that_came_back_is_not_reaped() -> None:
    store = Store({"a": entry("gw"), "b": entry("gw")})
    store.live = {"gw"}
    assert await store.reaper().reap("gw") == (0, 0)
    assert store.writes == []


async def test_the_callback_reaps_in_the_background_once_per_gateway() -> None:
    store = Store({"a": entry("dead"), "b": entry("dead", "x")})
    reaper = store.reaper()
    reaper.gateway_gone("dead")
    reaper.gateway_gone("dead")  # a second event while the first reap runs
    async with asyncio.timeout(5):
        while len(store.writes) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    await reaper.close()
    assert sorted(store.writes) == ["a", "b"]
