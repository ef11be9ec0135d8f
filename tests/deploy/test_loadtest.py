"""deploy/loadtest/fanout.py refuses what it must before it opens a single connection.

The load itself runs in deploy/smoke.py against the compose stack (and by hand); here only
the guards, which are what keeps a load test from hitting the wrong place.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.deploy.files import DEPLOY

SCRIPT = str(DEPLOY / "loadtest" / "fanout.py")


def run(*args: str, secret: str = "a-secret-of-at-least-32-bytes-for-the-test") -> \
        subprocess.CompletedProcess[str]:
    env = {**os.environ, "SB_JWT_SECRET": secret}
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          timeout=30, env=env, check=False)


def test_help_describes_the_scenario() -> None:
    answer = run("--help")
    assert answer.returncode == 0 and "--allow-remote" in answer.stdout


def test_a_non_loopback_target_needs_allow_remote() -> None:
    answer = run("--url", "ws://192.0.2.10:8080")  # TEST-NET-1: never reachable
    assert answer.returncode == 2 and "--allow-remote" in answer.stderr


def test_the_token_key_is_required() -> None:
    answer = run("--url", "ws://127.0.0.1:9", secret="")
    assert answer.returncode == 2 and "SB_JWT_SECRET" in answer.stderr
