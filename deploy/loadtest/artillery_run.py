"""Run the artillery scenarios of ``switchboard.yml`` against a cluster of their own.

``scripts/loadtest`` calls this after ``npm ci`` (nothing is timed before artillery is
installed). Without ``--target`` it starts ``python -m devcluster --app examples.orderbook`` on
free loopback ports, so the order book's application events are part of the load; with
``--target`` it drives a cluster already running on this machine (its ``SB_JWT_SECRET`` set
here, and the order-book workers beside it for ``/orders``).

Every user gets a JWT of its own (a payload row: token, user, room, transport). The exit code
is artillery's (1 when an ``ensure`` check fails: a failed user, the ack p99 over its bound),
3 when the run outlasts ``--max-seconds`` (it is killed), 2 when the cluster does not start.
Only loopback targets are accepted: a load test never leaves this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from fanout import is_loopback  # noqa: E402

from devcluster import ports  # noqa: E402
from tests.support.tokens import make_token  # noqa: E402

SCENARIOS = HERE / "switchboard.yml"
ARTILLERY = HERE / "node_modules" / ".bin" / "artillery"
APP = "examples.orderbook"
APP_API_KEY = "demo-key"
"""The order-book worker's development key (``SB_ORDERBOOK_API_KEY`` unset)."""
POLLING_EVERY = 4
"""Every fourth user runs over Engine.IO long-polling only; the others over WebSocket."""
USER_CONNECTIONS = "100"
"""The per-user connection limit of the cluster started here. Artillery's local workers (one
per core but one) each read the whole payload in the same order, so one row's user can be
connected from every worker at once; the default limit (5) would refuse that."""
STARTED = re.compile(r"^devcluster: started (\S+) pid=(\d+)", re.MULTILINE)
SESSIONS = re.compile(r'^switchboard_gateway_sessions_opened_total\{transport="(\w+)"\} (\S+)$',
                      re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Profile:
    """One ``config.environments`` entry of ``switchboard.yml`` and what it needs around it."""

    users: int
    rooms: int
    p99_ms: float
    max_seconds: float


PROFILES = {
    "smoke": Profile(users=200, rooms=10, p99_ms=2000, max_seconds=90),
    "heavy": Profile(users=6000, rooms=50, p99_ms=250, max_seconds=300),
}


def token_rows(secret: str, users: int, rooms: int,
               run: str) -> Iterator[tuple[str, str, str, str]]:
    """One payload row per user: its token, its name, the room it joins (round robin) and
    its transport.

    Names carry ``run`` so two runs against one cluster never share a user."""
    for index in range(users):
        user = f"load-{run}-{index}"
        transport = "polling" if index % POLLING_EVERY == POLLING_EVERY - 1 else "websocket"
        yield (make_token(user, secret=secret), user, f"room:load-{run}-{index % rooms}",
               transport)


def write_payload(path: Path, rows: Iterator[tuple[str, ...]]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["token", "user", "room", "transport"])
        writer.writerows(rows)


def target_of(ready: Mapping[str, Any]) -> str:
    """The URL users connect to: the balancer when the cluster has one, else gateway 1."""
    lb = ready.get("lb")
    if isinstance(lb, str) and lb:
        return lb
    return str(ready["gateways"][0])


def parse_ready(line: str) -> dict[str, Any] | None:
    """devcluster's ``READY {...}`` line as a dict, or None for any other line."""
    if not line.startswith("READY "):
        return None
    value = json.loads(line.removeprefix("READY "))
    return value if isinstance(value, dict) else None


def summary(report: Mapping[str, Any], sessions: Mapping[str, float] | None = None) -> str:
    """One line from artillery's ``--output`` JSON (users, emits, acks and their latency) and
    the gateways' sessions by transport when they were read."""
    aggregate = report.get("aggregate", {})
    counters = aggregate.get("counters", {})
    acks = aggregate.get("summaries", {}).get("socketio.response_time", {})
    errors = {k.removeprefix("errors."): v for k, v in counters.items()
              if k.startswith("errors.")}
    line = (f"vusers created={counters.get('vusers.created', 0)} "
            f"completed={counters.get('vusers.completed', 0)} "
            f"failed={counters.get('vusers.failed', 0)}; "
            f"emits={counters.get('socketio.emit', 0)} acks={acks.get('count', 0)}; "
            f"ack ms p50={acks.get('median', '-')} p95={acks.get('p95', '-')} "
            f"p99={acks.get('p99', '-')} max={acks.get('max', '-')}; "
            f"errors={json.dumps(errors, sort_keys=True)}")
    if sessions is not None:
        line += "; sessions " + " ".join(f"{name}={count:g}"
                                         for name, count in sorted(sessions.items()))
    return line


def free_base_port(gateways: int) -> int:
    """A base port whose devcluster ports (the balancer, gateways, the demo) are free now."""
    try:
        return ports.free_base_port(gateways)
    except RuntimeError:
        raise SystemExit("no free range of loopback ports for devcluster") from None


def sessions_opened(gateways: list[str]) -> dict[str, float]:
    """Engine.IO sessions the gateways opened, by the transport they started on."""
    total: dict[str, float] = {}
    for url in gateways:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        for transport, count in SESSIONS.findall(text):
            total[transport] = total.get(transport, 0.0) + float(count)
    return total


class Cluster:
    """``python -m devcluster --app examples.orderbook``, stopped by PID in :meth:`stop`."""

    def __init__(self, workdir: Path, gateways: int, secret: str) -> None:
        self.secret = secret
        self.log = workdir / "devcluster.log"
        self._gateways = gateways
        self._proc: subprocess.Popen[bytes] | None = None
        self._env = {**os.environ, "SB_JWT_SECRET": secret, "SB_ENV": "development",
                     "SB_API_KEY": secrets.token_urlsafe(32),
                     "SB_MAX_USER_CONNECTIONS": USER_CONNECTIONS, "SB_DRAIN_WINDOW_S": "1"}
        self._env.pop("SB_NAMESPACES_FILE", None)

    def start(self, within: float = 90.0) -> dict[str, Any]:
        """Start devcluster and return its READY object once every child (the app's workers
        too) is ready."""
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "devcluster", "--gateways", str(self._gateways),
                 "--base-port", str(free_base_port(self._gateways)), "--app", APP],
                cwd=ROOT, env=self._env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=log)
        ready = _read_ready(self._proc, within)
        if ready is None:
            print(f"devcluster did not print READY within {within:.0f} s; see {self.log}",
                  file=sys.stderr)
            raise SystemExit(2)
        return ready

    def stop(self, grace: float = 60.0) -> None:
        """SIGTERM devcluster (it stops its children); past ``grace``, SIGKILL it and every
        child it logged."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                for _name, pid in STARTED.findall(self.log.read_text(errors="replace")):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
        if proc.stdout is not None:
            proc.stdout.close()


def _read_ready(proc: subprocess.Popen[bytes], within: float) -> dict[str, Any] | None:
    """The READY object from ``proc``'s stdout, or None after ``within`` s or its exit."""
    found: list[dict[str, Any]] = []

    def read(stream: IO[bytes]) -> None:
        for raw in stream:
            ready = parse_ready(raw.decode(errors="replace").strip())
            if ready is not None:
                found.append(ready)
                return

    assert proc.stdout is not None
    reader = threading.Thread(target=read, args=(proc.stdout,), daemon=True)
    reader.start()
    reader.join(within)
    return found[0] if found else None


def run_artillery(args: argparse.Namespace, target: str, payload: Path, report: Path) -> int:
    """artillery's exit code, or 3 when it was killed at ``--max-seconds``."""
    overrides = {"config": {"ensure": {"thresholds": [
        {"socketio.response_time.p99": args.p99_ms}]}}}
    command = [str(ARTILLERY), "run", "--environment", args.profile, "--target", target,
               "--payload", str(payload), "--output", str(report),
               "--overrides", json.dumps(overrides), str(SCENARIOS)]
    env = {**os.environ, "ARTILLERY_DISABLE_TELEMETRY": "true",
           "SB_ORDERBOOK_API_KEY": os.environ.get("SB_ORDERBOOK_API_KEY", APP_API_KEY)}
    proc = subprocess.Popen(command, cwd=HERE, env=env, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        return proc.wait(args.max_seconds)
    except subprocess.TimeoutExpired:
        print(f"artillery ran past --max-seconds {args.max_seconds:.0f}; killed",
              file=sys.stderr)
        return 3
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # its own group: artillery and its workers
            proc.wait()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/loadtest",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="smoke",
                        help="smoke: 20 s at 4 users/s; heavy: 150 s ramping to 40 users/s")
    parser.add_argument("--target", help="a running cluster's loopback URL (SB_JWT_SECRET "
                        "set) instead of a devcluster of its own")
    parser.add_argument("--gateways", type=int, default=2, help="devcluster's gateways")
    parser.add_argument("--users", type=int, help="payload rows (distinct users)")
    parser.add_argument("--p99-ms", type=float, help="the ack p99 bound the run must keep")
    parser.add_argument("--max-seconds", type=float, help="artillery is killed after this")
    parser.add_argument("--workdir", type=Path, help="keep the payload, artillery's JSON "
                        "report (report.json) and devcluster's log here")
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile]
    args.users = args.users or profile.users
    args.p99_ms = args.p99_ms or profile.p99_ms
    args.max_seconds = args.max_seconds or profile.max_seconds
    if args.target and not is_loopback(args.target):
        parser.error(f"{args.target} is not a loopback address")
    if args.target and not os.environ.get("SB_JWT_SECRET"):
        parser.error("--target needs SB_JWT_SECRET, the cluster's token key")
    return args


def load(args: argparse.Namespace, workdir: Path) -> int:
    """Start the cluster unless given one, run artillery, print the summary, stop."""
    cluster = Cluster(workdir, args.gateways, secrets.token_urlsafe(32))
    report = workdir / "report.json"
    sessions = None
    try:
        target, gateways, secret = args.target, [], os.environ.get("SB_JWT_SECRET", "")
        if target is None:
            ready = cluster.start()
            target, gateways, secret = target_of(ready), ready["gateways"], cluster.secret
        payload = workdir / "users.csv"
        rooms = PROFILES[args.profile].rooms
        write_payload(payload, token_rows(secret, args.users, rooms, secrets.token_hex(3)))
        code = run_artillery(args, target, payload, report)
        with contextlib.suppress(OSError):
            sessions = sessions_opened(gateways) if gateways else None
    finally:
        cluster.stop()
    with contextlib.suppress(OSError, ValueError):
        print("loadtest: " + summary(json.loads(report.read_text()), sessions), flush=True)
    print(f"loadtest: profile {args.profile} against {target}: exit {code}", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not ARTILLERY.exists():
        raise SystemExit(f"{ARTILLERY} is missing: run `npm ci` in {HERE} (scripts/loadtest "
                         "does)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return load(args, args.workdir)
    with tempfile.TemporaryDirectory(prefix="sb-artillery-") as tmp:
        return load(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
