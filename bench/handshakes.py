"""Handshake rate and targeted-send rate, in one run.

1. Handshakes/s against one gateway, or ``--instances`` of them alternating (JWT in
   ``Authorization: Bearer`` on the upgrade, per-user admission compare-and-set in NATS KV;
   every connection has its own ``sub`` so the limit of 5 is never reached; ``--presence`` runs
   the presence service beside them): ``--concurrency`` handshakes in flight for ``--seconds``,
   each = upgrade, open packet, ``40/chat,`` -> ``40/chat,{"sid":...}``, close.
2. The same load generator against Socket.IO 4.8 + redis adapter (``--instances`` Node
   processes, bench/sio/) and the raw ``websockets`` server (bench/raw_ws_server.py) -> ratios.
   Each target of ``--targets`` is started alone and stopped before the next.
3. Targeted sends/s through the server API: a router is started, ``--users`` sockets stay
   connected to the gateway in /chat and count ``notice`` events, then
   ``POST /api/v1/users/{user}/send`` (aiohttp) and ``Backend(nc).send`` over NATS are driven with
   ``--in-flight`` requests outstanding for ``--send-seconds`` each. Deliveries counted by the
   sockets must equal the successful sends.

    .venv/bin/python bench/handshakes.py [--seconds 8] [--send-seconds 5] [--skip-sends]
        [--targets switchboard,sio,raw] [--instances 2] [--presence]

One JSON line per measurement in bench/results/handshakes-<time>.jsonl; a table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchproc
from benchproc import Child, cpu_percent, free_port, mint_tokens, snapshot, wait_http_ok
from fanout import LineReader, Recorder, Target, start_raw, start_switchboard, time_bound

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
NODE_DIR = BENCH / "handshakes"
RESULTS = BENCH / "results"
NAMESPACE = "/chat"
EVENT = "notice"
HIGH_API_LIMIT = "1000000"  # the router's API token bucket (default 1000/s) must not be the limit


class Node:
    """The Node process: handshake load and the held receiver sockets."""

    def __init__(self, logs: Path, lifetime_s: float) -> None:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node (20+) is not on PATH")
        if not (NODE_DIR / "node_modules" / "ws").is_dir():
            raise RuntimeError("run `npm ci --prefix bench/handshakes` first")
        argv = [node, str(NODE_DIR / "handshakes.js"), "--max-seconds", str(int(lifetime_s))]
        self.child = Child("loadgen", argv, logs / "node.log", stdin=subprocess.PIPE,
                           stdout_pipe=True)
        self.reader = LineReader(self.child)
        self.expect("ready", 20)

    def send(self, command: dict[str, Any]) -> None:
        stdin = self.child.proc.stdin
        assert stdin is not None
        stdin.write(orjson.dumps(command) + b"\n")
        stdin.flush()

    def expect(self, kind: str, timeout: float) -> dict[str, Any]:
        event = self.reader.event(timeout)
        if event.get("event") != kind:
            raise RuntimeError(f"node: expected {kind}, got {event}")
        return event

    def counts(self) -> dict[str, Any]:
        self.send({"cmd": "count"})
        return self.expect("counts", 10)

    def quit(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.send({"cmd": "quit"})
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.child.proc.wait(5)
        self.child.stop()


def handshakes(node: Node, urls: list[str], tokens: Path, concurrency: int, seconds: float,
               pids: dict[str, int]) -> dict[str, Any]:
    node.send({"cmd": "handshakes", "urls": urls, "tokens_file": str(tokens),
               "concurrency": concurrency, "duration_s": seconds})
    node.expect("window_start", 10)
    before = snapshot(pids)
    node.expect("window_end", seconds + 10)
    after = snapshot(pids)
    result = node.expect("handshake_result", 30)
    result["cpu"] = cpu_percent(before, after)
    return result


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(len(ordered) * p / 100) - 1))
    return round(ordered[index], 2)


async def drive_sends(kind: str, users: list[str], in_flight: int, seconds: float,
                      router_url: str, api_key: str, nats_url: str) -> dict[str, Any]:
    """``in_flight`` closed-loop workers for ``seconds``; users round-robin."""
    import aiohttp
    import nats

    from client.backend import Backend, BackendError

    counter = itertools.count()
    latencies: list[float] = []
    errors: dict[str, int] = {}
    connections_reached = 0
    offline = 0
    end = 0.0

    async def one(call: Any) -> None:
        nonlocal connections_reached, offline
        n = next(counter)
        user = users[n % len(users)]
        t0 = time.perf_counter()
        try:
            answer = await call(user, n)
        except Exception as exc:  # counted and reported
            key = f"{type(exc).__name__}: {str(exc)[:80]}"
            errors[key] = errors.get(key, 0) + 1
            return
        latencies.append((time.perf_counter() - t0) * 1000)
        connections_reached += int(answer.get("connections") or 0)
        offline += bool(answer.get("offline"))

    async def worker(call: Any) -> None:
        while time.perf_counter() < end:
            await one(call)

    async def run(call: Any) -> float:
        nonlocal end
        start = time.perf_counter()
        end = start + seconds
        await asyncio.gather(*(worker(call) for _ in range(in_flight)))
        return time.perf_counter() - start

    if kind == "http":
        headers = {"Authorization": f"Bearer {api_key}"}
        connector = aiohttp.TCPConnector(limit=in_flight)
        async with aiohttp.ClientSession(headers=headers, connector=connector) as session:

            async def call(user: str, n: int) -> dict[str, Any]:
                body = {"namespace": NAMESPACE, "event": EVENT, "data": {"n": n}}
                async with session.post(f"{router_url}/api/v1/users/{user}/send",
                                        json=body) as response:
                    answer: dict[str, Any] = await response.json(content_type=None)
                    if response.status != 200 or answer.get("ok") is not True:
                        raise RuntimeError(f"HTTP {response.status} {answer.get('error')}")
                    return answer

            elapsed = await run(call)
    else:
        nc = await nats.connect(nats_url)
        try:
            backend = Backend(nc)

            async def call(user: str, n: int) -> dict[str, Any]:
                try:
                    return await backend.send(user, NAMESPACE, EVENT, {"n": n})
                except BackendError as exc:
                    raise RuntimeError(exc.code) from exc

            elapsed = await run(call)
        finally:
            await nc.drain()
    return {
        "via": kind,
        "in_flight": in_flight,
        "duration_s": round(elapsed, 3),
        "ok": len(latencies),
        "sends_per_s": round(len(latencies) / elapsed, 1),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "connections_reached": connections_reached,
        "offline_answers": offline,
        "latency_ms": {"p50": pct(latencies, 50), "p90": pct(latencies, 90),
                       "p99": pct(latencies, 99), "max": pct(latencies, 100)},
    }


def sends(node: Node, kind: str, users: list[str], args: argparse.Namespace, router_url: str,
          api_key: str, nats_url: str, pids: dict[str, int]) -> dict[str, Any]:
    before_counts = node.counts()["received"]
    before = snapshot(pids)
    result = asyncio.run(drive_sends(kind, users, args.in_flight, args.send_seconds,
                                     router_url, api_key, nats_url))
    after = snapshot(pids)
    result["cpu"] = cpu_percent(before, after)
    expected = result["ok"]
    deadline = time.monotonic() + 10
    while True:  # deliveries still in flight when the last answer came
        counts = node.counts()
        delivered = counts["received"] - before_counts
        if delivered >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    time.sleep(0.5)  # and a moment more, to see duplicates
    counts = node.counts()
    result["delivered"] = counts["received"] - before_counts
    result["deliveries_match"] = result["delivered"] == expected
    result["held_open"] = counts["open"]
    return result


def fmt_cpu(cpu: dict[str, float | None]) -> str:
    return " ".join(f"{k} {v:.0f}%" for k, v in cpu.items() if v is not None and k != "steal")


def start_target(stack: contextlib.ExitStack, name: str, args: argparse.Namespace, logs: Path,
                 secret: str, lifetime: float) -> Target:
    """One handshake target with ``--instances`` servers (the raw server is always one)."""
    if name == "switchboard":
        target = start_switchboard(stack, logs, secret, args.instances, {},
                                   presence=args.presence, high_chat_limit=False)
    elif name == "sio":
        import peers

        target = peers.start_sio(stack, logs, secret, args.instances, lifetime)
    else:
        target = start_raw(stack, logs, lifetime)
    return target


def handshake_phase(node: Node, args: argparse.Namespace, logs: Path, secret: str,
                    tokens: Path, lifetime: float, rec: Recorder,
                    rows: list[tuple[str, dict[str, Any]]]) -> dict[str, float]:
    """Phases 1 and 2: each target started alone, driven, stopped; its connects/s by name."""
    from peers import Unavailable

    rates: dict[str, float] = {}
    for name in args.targets:
        with contextlib.ExitStack() as stack:
            try:
                target = start_target(stack, name, args, logs / name, secret, lifetime)
            except Unavailable as exc:
                print(f"  handshakes {name}: SKIPPED ({exc})", flush=True)
                rec.write("skipped", target=name, reason=str(exc))
                continue
            result = handshakes(node, target.urls, tokens, args.concurrency, args.seconds,
                                {**target.pids, "loadgen": node.child.pid})
        result.update(target=name, instances=len(target.urls), serving=sorted(target.pids))
        rec.write("handshakes", **result)
        rows.append((f"handshakes {name}", result))
        rates[name] = result["connects_per_s"]
        lat = result["latency_ms"]
        print(f"  handshakes {name:<11} {result['connects_per_s']:8,.0f}/s  "
              f"p50 {lat['p50']} p99 {lat['p99']} ms  failures {result['failures']} "
              f"{result['failure_reasons'] or ''}  {fmt_cpu(result['cpu'])}", flush=True)
    return rates


def send_phase(node: Node, args: argparse.Namespace, logs: Path, secret: str, lifetime: float,
               rec: Recorder, rows: list[tuple[str, dict[str, Any]]]) -> None:
    """Phase 3: targeted sends through the router (HTTP) and over NATS, one gateway."""
    api_key = secrets.token_hex(24)
    tag = secrets.token_hex(3)
    user_tokens = logs / "user-tokens.txt"
    mint_tokens(user_tokens, secret, args.users, f"user-{tag}")
    users = [f"user-{tag}-{n}" for n in range(args.users)]
    with contextlib.ExitStack() as stack:
        sends_logs = logs / "sends"
        sends_logs.mkdir(exist_ok=True)
        switchboard = start_switchboard(stack, sends_logs, secret, 1, {}, high_chat_limit=False)
        gateway = switchboard.children[-1]
        router_port = free_port()
        router_env = {**os.environ, "SB_HOST": "127.0.0.1", "SB_PORT": str(router_port),
                      "SB_NATS_URL": switchboard.nats_url, "SB_API_KEY": api_key,
                      "SB_LOG_LEVEL": "WARNING", "SB_INSTANCE_ID": "bench-hs-router"}
        if not args.api_rate_default:
            router_env.update(SB_API_RATE=HIGH_API_LIMIT, SB_API_BURST=HIGH_API_LIMIT)
        router = Child("router", [sys.executable, "-m", "router"], logs / "router.log",
                       env=router_env, cwd=REPO)
        stack.callback(router.stop)
        router_url = f"http://127.0.0.1:{router_port}"
        wait_http_ok(f"{router_url}/readyz", router, timeout=60)
        node.send({"cmd": "hold", "url": switchboard.urls[0], "tokens_file": str(user_tokens),
                   "count": args.users, "event_name": EVENT})
        held = node.expect("held", 30)
        rec.write("held", **held)
        print(f"  held sockets: {held['connected']} connected, {held['failed']} failed "
              f"{held['failure_reasons'] or ''}", flush=True)
        pids = {"router": router.pid, "gateway": gateway.pid,
                "nats-server": switchboard.pids["nats-server"], "loadgen": node.child.pid}
        for kind in ("http", "nats"):
            result = sends(node, kind, users, args, router_url, api_key, switchboard.nats_url,
                           {**pids, "runner": os.getpid()})
            rec.write("sends", **result)
            rows.append((f"sends {kind}", result))
            lat = result["latency_ms"]
            print(f"  sends {kind:<4} {result['sends_per_s']:8,.0f}/s  p50 {lat['p50']} "
                  f"p99 {lat['p99']} ms  errors {result['errors']} {result['error_kinds'] or ''} "
                  f"delivered {result['delivered']}/{result['ok']}  {fmt_cpu(result['cpu'])}",
                  flush=True)


TARGETS = ("switchboard", "sio", "raw")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=8.0, help="handshake window (5-10)")
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes in flight")
    parser.add_argument("--targets", default=",".join(TARGETS), type=benchproc.comma_list(TARGETS),
                        help="handshake targets, comma list of switchboard, sio, raw (all)")
    parser.add_argument("--instances", type=int, default=1,
                        help="gateways for switchboard, Node processes for sio (the raw server "
                        "is one process); handshakes alternate between them (default 1)")
    parser.add_argument("--presence", action="store_true",
                        help="run Switchboard's presence service too, as devcluster does")
    parser.add_argument("--skip-sends", action="store_true", help="no phase 3 (targeted sends)")
    parser.add_argument("--users", type=int, default=100, help="held sockets (one per user)")
    parser.add_argument("--in-flight", type=int, default=50, help="API sends outstanding")
    parser.add_argument("--send-seconds", type=float, default=5.0)
    parser.add_argument("--tokens", type=int, default=40_000,
                        help="distinct subs for the handshake phase (reused only if exhausted)")
    parser.add_argument("--api-rate-default", action="store_true",
                        help="keep the router's SB_API_RATE/BURST defaults (1000/2000)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results file (default bench/results/handshakes-<UTC time>.jsonl)")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 10 or not 0 < args.send_seconds <= 10:
        parser.error("--seconds and --send-seconds are bounded to 10")
    if not 1 <= args.instances <= 4:
        parser.error("--instances: 1-4")

    out, logs = benchproc.results_files("handshakes", args.out)
    for name in args.targets:
        (logs / name).mkdir()
    rec = Recorder(out)
    secret = secrets.token_hex(32)
    lifetime = 170.0
    hard_deadline = time.monotonic() + lifetime
    rec.write("run", args={**vars(args), "out": str(out)}, argv=sys.argv,
              node=subprocess.run(["node", "--version"], capture_output=True, text=True,
                                  check=False).stdout.strip())
    hs_tokens = logs / "handshake-tokens.txt"
    mint_tokens(hs_tokens, secret, args.tokens, f"hs-{secrets.token_hex(3)}")

    rows: list[tuple[str, dict[str, Any]]] = []
    with time_bound(lifetime), contextlib.ExitStack() as stack:
        node = Node(logs, lifetime)
        stack.callback(node.quit)
        rates = handshake_phase(node, args, logs, secret, hs_tokens, lifetime, rec, rows)
        ratios = {f"switchboard_over_{other}": round(rates["switchboard"] / rates[other], 3)
                  for other in ("sio", "raw")
                  if rates.get(other) and "switchboard" in rates}
        rec.write("comparison", **{f"handshakes_{k}": v for k, v in ratios.items()})
        for key, value in ratios.items():
            print(f"  handshakes {key.replace('_over_', ' / ')} = {value}x", flush=True)
        if not args.skip_sends:
            if time.monotonic() > hard_deadline - 40:
                raise RuntimeError("out of time before the send phase")
            send_phase(node, args, logs, secret, lifetime, rec, rows)

    print()
    print("| measurement | rate/s | p50 ms | p99 ms | failures | delivered "
          "| CPU % (1 core = 100) |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, r in rows:
        rate = r.get("connects_per_s", r.get("sends_per_s"))
        fails = r.get("failures", r.get("errors"))
        delivered = f"{r['delivered']}/{r['ok']}" if "delivered" in r else "-"
        cpu = ", ".join(f"{k} {v:.0f}" for k, v in r["cpu"].items()
                        if v is not None and k not in ("steal", "softirq"))
        print(f"| {name} | {rate:,.0f} | {r['latency_ms']['p50']} | {r['latency_ms']['p99']} | "
              f"{fails} | {delivered} | {cpu} |")
    for key, value in ratios.items():
        print(f"handshakes {key.replace('_over_', ' / ')} = {value}x")
    print(f"results: {rec.path}")
    rec.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
