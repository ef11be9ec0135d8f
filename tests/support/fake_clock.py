"""A clock a test moves by hand, for code that takes its clock as an argument (STYLE.md item
5): time passes only when the test says so, so nothing depends on how fast the box is."""

from __future__ import annotations


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
