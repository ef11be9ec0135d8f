"""Admission against the registry entry, as pure data."""

from __future__ import annotations

from shared.registry import (
    Admitted,
    ConnectionInfo,
    Refused,
    UserEntry,
    admit,
    drop_gateway,
    release,
)


def info(gateway: str = "gw-1", *namespaces: str) -> ConnectionInfo:
    return ConnectionInfo(gateway, namespaces or ("/chat",), 1.0)


def full(limit: int, gateway: str = "gw-1") -> UserEntry:
    return UserEntry({f"c{n}": info(gateway) for n in range(limit)})


def test_admits_up_to_the_limit_then_refuses() -> None:
    entry = UserEntry()
    for n in range(5):
        result = admit(entry, f"c{n}", info(), {"gw-1": ""}, 5)
        assert isinstance(result, Admitted)
        entry = result.entry
    assert admit(entry, "c5", info(), {"gw-1": ""}, 5) == Refused(5)


def test_readmitting_a_connection_reuses_its_slot() -> None:
    result = admit(full(5), "c3", info("gw-1", "/chat", "/notifications"), {"gw-1": ""}, 5)
    assert isinstance(result, Admitted)
    assert result.entry.connections["c3"].namespaces == ("/chat", "/notifications")
    assert len(result.entry.connections) == 5


def test_dead_gateways_do_not_count_and_are_dropped() -> None:
    entry = full(5, "gw-dead")
    result = admit(entry, "new", info("gw-2"), {"gw-2": ""}, 5)
    assert isinstance(result, Admitted)
    assert set(result.entry.connections) == {"new"}


def test_connections_of_an_earlier_run_of_a_gateway_do_not_count() -> None:
    old_run = UserEntry({f"c{n}": ConnectionInfo("gw-1", ("/chat",), 1.0, "boot-a")
                         for n in range(5)})
    result = admit(old_run, "new", ConnectionInfo("gw-1", ("/chat",), 2.0, "boot-b"),
                   {"gw-1": "boot-b"}, 5)
    assert isinstance(result, Admitted)
    assert set(result.entry.connections) == {"new"}
    assert admit(old_run, "new", info("gw-1"), {"gw-1": "boot-a"}, 5) == Refused(5)
    assert UserEntry.decode(old_run.encode()) == old_run


def test_entries_without_a_boot_count_while_their_gateway_lives() -> None:
    entry = full(2)
    assert len(entry.live({"gw-1": "any-boot"})) == 2
    assert entry.live({"gw-2": ""}) == {}


def test_release_and_drop_gateway() -> None:
    entry = UserEntry({"a": info("gw-1"), "b": info("gw-2")})
    assert set(release(entry, "a").connections) == {"b"}
    assert set(drop_gateway(entry, "gw-2").connections) == {"a"}


def test_entries_round_trip_and_garbage_is_empty() -> None:
    entry = UserEntry({"a": info("gw-1", "/chat", "/live-updates")})
    assert UserEntry.decode(entry.encode()) == entry
    for garbage in (None, b"", b"{", b"[]", b'{"connections": {"a": {"gateway": 1}}}'):
        assert UserEntry.decode(garbage).connections == {}
