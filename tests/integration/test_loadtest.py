"""``scripts/loadtest`` as an operator runs it: artillery's smoke profile against a devcluster
of its own (two gateways behind its balancer, the order-book workers), every ensure check
kept, every user done, every emit acked, some users on long-polling, nothing left running.

The load is artillery's own (socket.io-client 4.8 in node); ``scripts/test`` installs it from
deploy/loadtest/package-lock.json beforehand, so nothing is installed while the test runs.
The ack p99 bound of the smoke profile is a liveness bound, far above any healthy run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_devcluster import STARTED, alive
from tests.support.timing import UNIT

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy" / "loadtest"))

import artillery_run  # noqa: E402

pytestmark = pytest.mark.integration

SESSIONS = re.compile(r"sessions polling=(\d+) websocket=(\d+)")


def run_loadtest(workdir: Path, within: float) -> tuple[int, str]:
    """scripts/loadtest's exit code and output; SIGTERM (it stops its cluster) past
    ``within`` s, then SIGKILL to its process group."""
    proc = subprocess.Popen([str(ROOT / "scripts" / "loadtest"), "--workdir", str(workdir)],
                            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=within)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=90 * UNIT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        pytest.fail(f"scripts/loadtest ran past {within:g} s:\n{out[-4000:]}")
    return proc.returncode, out


def leftovers(workdir: Path) -> list[str]:
    """devcluster's children (as its log names them) still running; SIGKILLed here."""
    log = workdir / "devcluster.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    running = [(name, int(pid)) for name, pid in STARTED.findall(text) if alive(int(pid))]
    for _name, pid in running:
        os.kill(pid, signal.SIGKILL)
    return [name for name, _pid in running]


@pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None,
                    reason="artillery needs node and npm, and neither is on PATH")
def test_the_smoke_profile_keeps_its_ensure_checks(tmp_path: Path) -> None:
    try:
        code, out = run_loadtest(tmp_path, 240 * UNIT)
    finally:
        left = leftovers(tmp_path)
    assert code == 0, out[-4000:]
    assert left == []
    assert "ok: vusers.failed == 0" in out and "ok: socketio.response_time.p99" in out

    aggregate = json.loads((tmp_path / "report.json").read_text())["aggregate"]
    counters, acks = aggregate["counters"], aggregate["summaries"]["socketio.response_time"]
    assert counters["vusers.created"] > 0
    assert counters.get("vusers.failed", 0) == 0
    assert counters["vusers.completed"] == counters["vusers.created"]
    assert counters["vusers.created_by_name.chat"] > 0
    assert counters["vusers.created_by_name.orders"] > 0  # the application's events
    assert acks["count"] == counters["socketio.emit"] > 0  # every emit acked {ok: true}
    assert not [name for name in counters if name.startswith("errors.")]

    assert f"failed=0; emits={counters['socketio.emit']} acks={acks['count']};" in out
    sessions = SESSIONS.search(out)
    assert sessions is not None, out[-4000:]
    assert int(sessions[1]) > 0 and int(sessions[2]) > 0  # long-polling and WebSocket users


def test_users_alternate_transports_and_rooms() -> None:
    rows = list(artillery_run.token_rows("k" * 32, users=8, rooms=3, run="r1"))
    assert [row[3] for row in rows] == ["websocket"] * 3 + ["polling"] + \
        ["websocket"] * 3 + ["polling"]
    assert [row[2] for row in rows[:4]] == ["room:load-r1-0", "room:load-r1-1",
                                            "room:load-r1-2", "room:load-r1-0"]
    assert len({row[1] for row in rows}) == 8


def test_the_balancer_is_the_target_when_the_cluster_has_one() -> None:
    gateways = ["http://127.0.0.1:8001", "http://127.0.0.1:8002"]
    assert artillery_run.target_of({"gateways": gateways}) == gateways[0]
    assert artillery_run.target_of({"gateways": gateways,
                                    "lb": "http://127.0.0.1:8000"}) == "http://127.0.0.1:8000"
    assert artillery_run.parse_ready('READY {"gateways": []}') == {"gateways": []}
    assert artillery_run.parse_ready("devcluster: started nats pid=1") is None


def test_only_loopback_targets_are_accepted() -> None:
    env = {**os.environ, "SB_JWT_SECRET": "a-secret-of-at-least-32-bytes-for-the-test"}
    answer = subprocess.run([sys.executable, str(ROOT / "deploy" / "loadtest" /
                                                 "artillery_run.py"),
                             "--target", "http://192.0.2.10:8000"],  # TEST-NET-1
                            capture_output=True, text=True, timeout=30 * UNIT, env=env,
                            check=False)
    assert answer.returncode == 2 and "not a loopback address" in answer.stderr
