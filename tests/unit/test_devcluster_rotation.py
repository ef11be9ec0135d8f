"""The devcluster balancer's choice of gateway, the supervisor's restart delays, and the
free base port a test's own devcluster takes."""

from __future__ import annotations

import socket

import pytest

from devcluster.parent_death import die_with_parent
from devcluster.ports import bindable, free_base_port
from devcluster.restarts import FIRST_DELAY_S, MAX_DELAY_S, STABLE_AFTER_S, RestartPolicy
from devcluster.rotation import Rotation

A, B, C = ("h", 1), ("h", 2), ("h", 3)


def test_connections_go_round_robin_over_healthy_gateways() -> None:
    rotation = Rotation([A, B, C])
    assert [rotation.order()[0] for _ in range(6)] == [A, B, C, A, B, C]


def test_unhealthy_gateways_are_tried_last_and_only_then() -> None:
    rotation = Rotation([A, B, C])
    rotation.mark(B, False)
    assert [rotation.order() for _ in range(3)] == [[A, C, B], [C, A, B], [C, A, B]]
    rotation.mark(B, True)
    assert rotation.healthy(B)


def test_with_nothing_healthy_every_gateway_is_still_tried() -> None:
    rotation = Rotation([A, B])
    rotation.mark(A, False)
    rotation.mark(B, False)
    assert sorted(rotation.order()) == [A, B]


def test_a_rotation_needs_an_upstream() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Rotation([])


def test_a_child_dying_at_once_backs_off_and_a_stable_one_starts_afresh() -> None:
    policy = RestartPolicy()
    delays = [policy.after_exit(0.1) for _ in range(6)]
    assert delays[0] == FIRST_DELAY_S
    assert delays == sorted(delays) and delays[-1] == MAX_DELAY_S
    assert policy.after_exit(STABLE_AFTER_S) == FIRST_DELAY_S
    assert policy.restarts == 7


def test_children_are_tied_to_their_parent_on_linux() -> None:
    assert callable(die_with_parent())


def test_a_free_base_port_has_the_whole_layout_free_the_balancer_included() -> None:
    base = free_base_port(2, extra_offsets=(90,))
    assert all(bindable(port) for port in (base, base + 1, base + 2, base + 90, base + 100))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        assert not bindable(taken.getsockname()[1])
