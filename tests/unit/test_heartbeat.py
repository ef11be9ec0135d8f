"""Heartbeat as pure state: fixed-cadence pings, a miss per unanswered ping, DEAD after
``max_misses`` consecutive misses. Times are plain numbers (seconds)."""

from __future__ import annotations

from shared.heartbeat import Beat, Heartbeat

PING = [Beat.PING]
DEAD = [Beat.DEAD]


def heartbeat(max_misses: int = 2) -> Heartbeat:
    return Heartbeat.start(now=100.0, interval=25.0, timeout=5.0, max_misses=max_misses)


def test_first_ping_is_one_interval_after_start() -> None:
    beat = heartbeat()

    assert beat.next_deadline() == 125.0
    assert beat.on_timer(124.0) == []
    assert beat.on_timer(125.0) == PING


def test_pings_keep_a_fixed_cadence_whether_or_not_pongs_come() -> None:
    answered, silent = heartbeat(max_misses=100), heartbeat(max_misses=100)
    pings: dict[str, list[float]] = {"answered": [], "silent": []}

    for now in [125.0, 126.5, 130.0, 150.0, 151.0, 155.0, 175.0, 199.0, 200.0, 225.0]:
        if answered.on_timer(now) == PING:
            pings["answered"].append(now)
            answered.on_pong()  # the pong comes right away ...
        if Beat.PING in silent.on_timer(now):
            pings["silent"].append(now)  # ... or never

    assert pings["answered"] == [125.0, 150.0, 175.0, 200.0, 225.0]
    assert pings["silent"] == [125.0, 150.0, 175.0, 200.0, 225.0]


def test_a_late_pong_does_not_shift_the_cadence() -> None:
    beat = heartbeat()
    beat.on_timer(125.0)
    beat.on_pong()  # long after the ping, inside the timeout

    assert beat.next_deadline() == 150.0
    assert beat.on_timer(150.0) == PING


def test_an_unanswered_ping_is_a_miss_after_the_timeout() -> None:
    beat = heartbeat()
    beat.on_timer(125.0)

    assert beat.next_deadline() == 130.0
    assert beat.on_timer(129.0) == []
    assert beat.misses == 0
    assert beat.on_timer(130.0) == []
    assert beat.misses == 1
    assert beat.next_deadline() == 150.0


def test_dead_after_max_misses_consecutive_misses() -> None:
    beat = heartbeat(max_misses=2)

    assert beat.on_timer(125.0) == PING
    assert beat.on_timer(130.0) == []  # miss 1
    assert beat.on_timer(150.0) == PING
    assert beat.on_timer(155.0) == DEAD  # miss 2


def test_one_allowed_miss_means_dead_at_the_first_timeout() -> None:
    beat = heartbeat(max_misses=1)
    beat.on_timer(125.0)

    assert beat.on_timer(130.0) == DEAD


def test_a_pong_resets_the_miss_count() -> None:
    beat = heartbeat(max_misses=2)
    beat.on_timer(125.0)
    beat.on_timer(130.0)  # miss 1
    beat.on_timer(150.0)
    beat.on_pong()

    assert beat.misses == 0
    assert beat.on_timer(155.0) == []
    assert beat.on_timer(175.0) == PING
    assert beat.on_timer(180.0) == []  # miss 1 again, not 2
    assert beat.on_timer(200.0) == PING
    assert beat.on_timer(205.0) == DEAD


def test_a_late_timer_counts_the_miss_then_pings() -> None:
    beat = heartbeat(max_misses=3)
    beat.on_timer(125.0)

    assert beat.on_timer(160.0) == PING  # the miss of the 125 ping, then the 150 ping, late
    assert beat.misses == 1
    assert beat.next_deadline() == 165.0  # this ping's timeout comes before the 175 ping


def test_a_timer_several_intervals_late_pings_once() -> None:
    beat = heartbeat()

    assert beat.on_timer(300.0) == PING
    assert beat.next_deadline() == 305.0
    assert beat.on_timer(305.0) == []
    assert beat.on_timer(325.0) == PING
