"""Room fan-out through a deployed stack's load balancer: delivery rate, latency and loss.

The benchmarks under bench/ compare Switchboard with its peers on one machine; this drives a
*deployment* (the compose stack, or a cluster behind an ingress) with the same load generator
(bench/loadgen/loadgen.js, ``npm ci --prefix bench/loadgen`` once) and reports per step what
operators size by: messages delivered per second, end-to-end latency percentiles from publish
to delivery, and anything lost or duplicated. Every connection goes through the one URL, so the
load balancer spreads members over all gateways and most messages cross NATS.

    SB_JWT_SECRET=... .venv/bin/python deploy/loadtest/fanout.py --url ws://127.0.0.1:8080 \\
        --rooms 10 --members 50 --rates 100,500 --duration 10

Bounded by design: every step has a duration, the generator exits after ``--max-seconds``
whatever happens, and only loopback targets are accepted unless ``--allow-remote`` is given
(a load test against a shared environment should be a decision, not a typo).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support.tokens import make_token  # noqa: E402

LOADGEN = ROOT / "bench" / "loadgen" / "loadgen.js"


def is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace, secret: str) -> list[dict[str, Any]]:
    """Start the generator, run one step per rate, return the step results."""
    node = shutil.which("node")
    if node is None or not (LOADGEN.parent / "node_modules").is_dir():
        raise SystemExit("needs node and `npm ci --prefix bench/loadgen`")
    members = args.rooms * args.members
    tokens = [make_token(f"load-m{i}", secret=secret) for i in range(members)]
    tokens += [make_token(f"load-p{p}", secret=secret) for p in range(args.rooms)]
    with tempfile.TemporaryDirectory(prefix="sb-loadtest-") as tmp:
        config = Path(tmp) / "config.json"
        config.write_text(json.dumps({
            "urls": [args.url], "rooms": args.rooms, "members_per_room": args.members,
            "publishers": args.rooms, "room_prefix": f"room:load-{os.getpid()}-",
            "tokens": tokens, "publishers_join": True,
            "max_lifetime_s": args.max_seconds, "run_tag": "deploy-loadtest"}))
        proc = subprocess.Popen([node, str(LOADGEN), "--config", str(config)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                cwd=LOADGEN.parent)
        assert proc.stdin is not None and proc.stdout is not None
        results = []
        try:
            ready = _next_event(proc, {"ready", "fatal"})
            if ready["event"] != "ready":
                raise SystemExit(f"the load generator could not connect: {ready}")
            for step, rate in enumerate(args.rates):
                proc.stdin.write(json.dumps({"cmd": "step", "id": step, "rate": rate,
                                             "duration_s": args.duration, "grace_s": 10,
                                             "settle_s": 10}) + "\n")
                proc.stdin.flush()
                results.append(_next_event(proc, {"step_result", "fatal"}))
            proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            proc.stdin.flush()
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            with contextlib.suppress(OSError):
                proc.stdin.close()
            proc.stdout.close()
    return results


def _next_event(proc: subprocess.Popen[str], wanted: set[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    for line in proc.stdout:
        event: dict[str, Any] = json.loads(line)
        if event.get("event") in wanted:
            return event
    raise SystemExit(f"the load generator exited (code {proc.wait()}) before {wanted}")


def report(results: list[dict[str, Any]]) -> str:
    lines = ["target/s  published/s  delivered/s  p50 ms  p99 ms  max ms   lost  dup"]
    for r in results:
        if r.get("event") != "step_result":
            lines.append(f"failed: {r}")
            continue
        lat = r["latency_ms"]
        lines.append(f"{r['target_rate']:>8}  {r['publish_rate']:>11.0f}  "
                     f"{r['delivered_per_s']:>11.0f}  {lat['p50'] or 0:>6.1f}  "
                     f"{lat['p99'] or 0:>6.1f}  {lat['max'] or 0:>6.1f}  {r['lost']:>5}  "
                     f"{r['dup']:>3}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/loadtest/fanout.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8080",
                        help="the load balancer (default %(default)s)")
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--members", type=int, default=50, help="members per room")
    parser.add_argument("--rates", default="100,500",
                        help="comma-separated publishes per second, one step each")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per step")
    parser.add_argument("--max-seconds", type=int, default=600,
                        help="the generator exits after this long whatever happens")
    parser.add_argument("--allow-remote", action="store_true",
                        help="accept a non-loopback URL")
    parser.add_argument("--json", action="store_true", help="print the raw step results")
    args = parser.parse_args(argv)
    args.rates = [int(rate) for rate in args.rates.split(",") if rate.strip()]
    if not is_loopback(args.url) and not args.allow_remote:
        parser.error(f"{args.url} is not a loopback address; add --allow-remote if you mean it")
    secret = os.environ.get("SB_JWT_SECRET", "")
    if not secret:
        parser.error("SB_JWT_SECRET must be the deployment's token key")
    started = time.monotonic()
    results = run(args, secret)
    print(json.dumps(results, indent=2) if args.json else report(results))
    print(f"({time.monotonic() - started:.0f}s)", file=sys.stderr)
    failed = [r for r in results if r.get("event") != "step_result" or r["lost"] or r["dup"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
