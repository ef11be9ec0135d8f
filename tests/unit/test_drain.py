import pytest

from gateway.drain import close_gap


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
