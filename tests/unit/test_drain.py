import pytest

from gateway.drain import close_gap, closes_due


def test_closes_go_out_at_the_rate_when_the_window_allows_it() -> None:
    assert close_gap(5_000, 10.0, 1_000.0) == pytest.approx(0.001)  # 5 s, not 10
    assert close_gap(3, 60.0, 1_000.0) == pytest.approx(0.001)


def test_more_sockets_than_the_rate_fits_in_the_window_are_spread_over_the_window() -> None:
    gap = close_gap(20_000, 10.0, 1_000.0)
    assert gap == pytest.approx(0.0005)
    assert gap * 20_000 == pytest.approx(10.0)


def test_no_window_or_no_sockets_closes_at_once() -> None:
    assert close_gap(100, 0.0, 1_000.0) == 0.0
    assert close_gap(0, 10.0, 1_000.0) == 0.0


def test_a_pass_that_comes_late_closes_every_connection_already_due() -> None:
    gap = close_gap(5_000, 10.0, 1_000.0)
    assert closes_due(0.0, gap, 5_000) == 1
    assert closes_due(0.0005, gap, 5_000) == 1
    assert closes_due(0.0072, gap, 5_000) == 8  # a 7 ms pass: the seven it missed, and this one
    assert closes_due(4.9995, gap, 5_000) == 5_000
    assert closes_due(60.0, gap, 5_000) == 5_000


def test_with_no_gap_every_close_is_due_at_once() -> None:
    assert closes_due(0.0, 0.0, 300) == 300
    assert closes_due(0.0, 0.0, 0) == 0
