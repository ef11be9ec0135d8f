"""Reports how many generated inputs the fuzz layers fed to the code under test."""

from __future__ import annotations

import pytest

from tests.security.strategies import COUNTS


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not COUNTS:
        return
    terminalreporter.section("security fuzzing: generated inputs")
    for layer in sorted(COUNTS):
        terminalreporter.write_line(f"{layer}: {COUNTS[layer]:,}")
