"""Gateway runs: the newest stamp names a gateway's current run; a newer run closes the old
runs that had sockets; a run is live only while its gateway's liveness key is there."""

from __future__ import annotations

from presence.gateway_runs import GatewayRuns


def test_the_first_run_seen_replaces_nothing() -> None:
    runs = GatewayRuns()
    runs.seen("gw", "b1")

    assert runs.replaced("gw", "b1", 1.0) == []
    assert runs.is_live("gw", "b1", {"gw"})


def test_a_newer_run_closes_the_old_runs_with_sockets() -> None:
    runs = GatewayRuns()
    runs.seen("gw", "b1")
    runs.newer("gw", "b1", 1.0)
    runs.seen("gw", "b2")

    assert runs.replaced("gw", "b2", 2.0) == ["b1"]
    assert not runs.is_live("gw", "b1", {"gw"})
    assert runs.is_live("gw", "b2", {"gw"})


def test_an_older_or_equal_stamp_does_not_take_over() -> None:
    runs = GatewayRuns()
    runs.newer("gw", "b2", 5.0)

    assert not runs.newer("gw", "b1", 5.0)
    assert runs.replaced("gw", "b1", 4.0) == []
    assert runs.is_live("gw", "b2", {"gw"}) and not runs.is_live("gw", "b1", {"gw"})


def test_a_run_of_a_gateway_without_a_liveness_key_is_not_live() -> None:
    runs = GatewayRuns()
    runs.newer("gw", "b1", 1.0)

    assert not runs.is_live("gw", "b1", set())
    assert not runs.is_live("other", "x", {"gw"})


def test_closed_runs_are_forgotten() -> None:
    runs = GatewayRuns()
    runs.seen("gw", "b2")
    runs.seen("gw", "b1")
    assert runs.runs("gw") == ["b1", "b2"]

    runs.closed("gw", "b1")

    assert runs.runs("gw") == ["b2"]
    assert runs.runs("unknown") == []
