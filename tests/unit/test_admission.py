"""Admission's shell over a fake registry: who is admitted, what a close releases (found by
connection id, for every user the connection carried), kicks, admitting without the limit
when the registry cannot answer, and the pace of opens (at most ``max_opening`` at once, in
arrival order). The registry's own compare-and-set is in test_registry_kv.py."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from gateway.actions import Restore
from gateway.admission import Admission
from shared.config import GatewaySettings
from shared.metrics import GatewayMetrics
from shared.registry import Admitted, ConnectionInfo, Refused, UserEntry
from shared.registry_kv import RegistryUnavailable

SHIPPED_MAX_OPENING: int = GatewaySettings.__dataclass_fields__["max_opening"].default


@dataclass
class FakeRegistry:
    """Per user, the connection ids admitted; ``limit`` as the real registry applies it."""

    held: dict[str, dict[str, ConnectionInfo]] = field(default_factory=dict)
    released: list[tuple[str, str]] = field(default_factory=list)
    down: bool = False
    boot: str = "boot-1"
    guesses: list[bool] = field(default_factory=list)

    async def admit(self, user: str, conn_id: str, info: ConnectionInfo,
                    limit: int, guess: bool = True) -> Admitted | Refused:
        self.guesses.append(guess)
        if self.down:
            raise RegistryUnavailable("no NATS")
        mine = self.held.setdefault(user, {})
        if conn_id not in mine and len(mine) >= limit:
            return Refused(len(mine))
        mine[conn_id] = info
        return Admitted(UserEntry(dict(mine)))

    async def release(self, user: str, conn_id: str) -> None:
        if self.down:
            raise RegistryUnavailable("no NATS")
        self.released.append((user, conn_id))
        self.held.get(user, {}).pop(conn_id, None)


@dataclass(eq=False)
class Conn:
    eio_sid: str
    kicked: list[str] = field(default_factory=list)

    async def kick(self, user: str, reason: str) -> bool:
        self.kicked.append(user)
        return True


def admission(registry: FakeRegistry | None, limit: int = 2) -> Admission:
    return Admission(cast(Any, registry), "gw-1", limit, GatewayMetrics(CollectorRegistry()),
                     SHIPPED_MAX_OPENING)


async def test_admits_up_to_the_limit_and_a_close_frees_the_slot() -> None:
    registry = FakeRegistry()
    gate = admission(registry)
    a, b, c = Conn("a"), Conn("b"), Conn("c")

    assert await gate.admit(a, "alice", "/chat")
    assert await gate.admit(b, "alice", "/chat")
    assert not await gate.admit(c, "alice", "/chat")
    await gate.release(a)

    assert await gate.admit(c, "alice", "/chat")
    assert registry.released == [("alice", "a")]
    assert gate.by_user["alice"] == {b, c}


async def test_a_second_namespace_reuses_the_connections_slot() -> None:
    registry = FakeRegistry()
    gate = admission(registry, limit=1)
    a = Conn("a")

    assert await gate.admit(a, "alice", "/chat")
    assert await gate.admit(a, "alice", "/notifications")

    assert registry.held["alice"]["a"].namespaces == ("/chat", "/notifications")


async def test_a_close_releases_every_user_of_that_connection_and_no_other() -> None:
    registry = FakeRegistry()
    gate = admission(registry)
    shared, other = Conn("a"), Conn("b")
    await gate.admit(shared, "alice", "/chat")
    await gate.admit(shared, "bob", "/live-updates")
    await gate.admit(other, "alice", "/chat")

    await gate.release(shared)
    await gate.release(shared)  # a second close finds nothing left to free

    assert sorted(registry.released) == [("alice", "a"), ("bob", "a")]
    assert gate.by_user == {"alice": {other}}


async def test_kick_reaches_every_local_connection_of_the_user() -> None:
    gate = admission(FakeRegistry())
    a, b, c = Conn("a"), Conn("b"), Conn("c")
    await gate.admit(a, "alice", "/chat")
    await gate.admit(b, "alice", "/chat")
    await gate.admit(c, "bob", "/chat")

    assert await gate.kick("alice", "banned") == 2
    assert a.kicked == ["alice"] and b.kicked == ["alice"] and c.kicked == []


async def test_without_a_registry_answer_the_connection_is_admitted_unchecked() -> None:
    registry = FakeRegistry(down=True)
    gate = admission(registry)
    a = Conn("a")

    assert await gate.admit(a, "alice", "/chat")
    await gate.release(a)  # the registry is still down: logged, nothing raised

    assert gate.by_user == {}


async def test_opens_beyond_max_opening_wait_their_turn_in_arrival_order() -> None:
    metrics = GatewayMetrics(CollectorRegistry())
    gate = Admission(None, "gw-1", 5, metrics, max_opening=2)
    release = asyncio.Event()
    started: list[int] = []

    async def opening(n: int) -> int:
        started.append(n)
        await release.wait()
        return n

    tasks = [asyncio.ensure_future(gate.paced(functools.partial(opening, n))) for n in range(5)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert started == [0, 1]
    assert metrics.opens_waiting._value.get() == 3

    release.set()
    assert await asyncio.gather(*tasks) == [0, 1, 2, 3, 4]
    assert started == [0, 1, 2, 3, 4]
    assert metrics.opens_waiting._value.get() == 0


async def test_an_open_with_a_free_place_runs_without_suspending() -> None:
    gate = Admission(None, "gw-1", 5, GatewayMetrics(CollectorRegistry()), max_opening=1)

    async def opening() -> str:
        return "done"

    runner = gate.paced(opening)
    with pytest.raises(StopIteration) as finished:
        runner.send(None)
    assert finished.value.value == "done"


async def test_a_waiting_open_that_is_cancelled_gives_its_place_on() -> None:
    gate = Admission(None, "gw-1", 5, GatewayMetrics(CollectorRegistry()), max_opening=1)
    release = asyncio.Event()

    async def opening(n: int) -> int:
        await release.wait()
        return n

    first = asyncio.ensure_future(gate.paced(functools.partial(opening, 1)))
    cancelled = asyncio.ensure_future(gate.paced(functools.partial(opening, 2)))
    last = asyncio.ensure_future(gate.paced(functools.partial(opening, 3)))
    await asyncio.sleep(0)
    cancelled.cancel()
    release.set()
    assert await first == 1 and await last == 3
    assert cancelled.cancelled()


async def test_a_recovering_client_s_user_is_read_not_guessed_new() -> None:
    registry = FakeRegistry()
    gate = admission(registry)

    assert await gate.admit(Conn("a"), "alice", "/chat")
    assert await gate.admit(Conn("b"), "alice", "/chat", Restore("pid-1", "0|room:a:3"))

    assert registry.guesses == [True, False]
