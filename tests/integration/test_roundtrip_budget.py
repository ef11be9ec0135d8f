"""What one connection life asks of NATS, counted by ``bench/roundtrips.py`` against a real
nats-server and an in-process gateway: a count, not a time, so it holds on a busy box too.

The budget is today's figure. A change that adds a request to every connect (a read before a
write, a second put of the session) shows up here before it shows up as a slower S3; a change
that breaks the benchmark itself (it reaches into the NATS client) fails here too.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "bench" / "roundtrips.py"
LIFE_BUDGET = 9.0  # requests + flushes per life that also joins one room


def per_life(output: str) -> dict[str, float]:
    rows = re.findall(r"^\| (.+?) \| (\d+\.\d+) \|$", output, re.MULTILINE)
    return {name: float(value) for name, value in rows}


def test_a_connection_life_stays_within_its_round_trip_budget() -> None:
    run = subprocess.run(
        [sys.executable, str(BENCH), "--lives", "30", "--rooms", "3", "--settle", "1.0"],
        capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    total = re.search(r"round trips per connection life \(requests \+ flushes\): (\d+\.\d+)",
                      run.stdout)
    assert total is not None, run.stdout
    assert float(total.group(1)) <= LIFE_BUDGET, run.stdout
    counts = per_life(run.stdout)
    assert counts["request: kv write sb-registry"] == 2.0, run.stdout  # admit, release
    assert counts["publish: kv write sb-sessions"] == 1.0, run.stdout  # the closing record
    assert counts["sub: sb.fan.*"] == counts["unsub"] == 2.0, run.stdout  # user room + room
