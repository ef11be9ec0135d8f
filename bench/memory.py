"""Idle connections: open rate and server memory per connection (scenario S2 of shared/peers.md).

``--connections`` (10,000) sockets, each joined to one of ``--rooms`` (10) rooms, with
``--concurrency`` (200) handshakes in flight, from one Node process (``loadgen/idle.js``; 10,000
sockets fit in its 20,000 descriptors). Per target:

- **open rate**: connections whose ``room:join`` was acked ÷ the time from the first upgrade to
  the last ack;
- **RSS growth per connection**: ``VmRSS`` of each serving process from before the first
  connection to ``--settle`` s after the last frame the clients got (presence keeps
  announcing joins for a while after the last ack), ÷ the connections still open.

Targets, each started alone: **switchboard** as users get it (devcluster's pieces: nats-server,
the presence service, ``--instances`` gateways, all defaults); **sio** (Socket.IO 4.8 + redis
adapter, ``--instances`` Node processes and redis-server); **raw** (the one-process ceiling). The
headline is the servers' own memory (gateways / Node processes / the raw server); NATS, presence
and redis are reported beside it, and in the total.

    .venv/bin/python bench/memory.py [--quick] [--targets switchboard,sio,raw]

One JSON line per target in bench/results/memory-<time>.jsonl (logs next to it); a table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchproc
from benchproc import NodeDriver, cpu_percent, mint_tokens, rss_bytes, snapshot
from fanout import Overtime, Recorder, Target, start_raw, start_switchboard, time_bound, versions

BENCH = Path(__file__).resolve().parent
IDLE_JS = BENCH / "loadgen" / "idle.js"
TARGETS = ("switchboard", "sio", "raw")
# The servers' own processes (the headline); everything else a target runs is "beside".
PRIMARY_PREFIXES = ("gateway-", "sio-", "raw-server")
MiB = 1024 * 1024


def start_target(stack: contextlib.ExitStack, name: str, args: argparse.Namespace, logs: Path,
                 secret: str, lifetime: float) -> Target:
    if name == "switchboard":
        return start_switchboard(stack, logs, secret, args.instances, {}, presence=True,
                                 high_chat_limit=False)
    if name == "sio":
        import peers

        return peers.start_sio(stack, logs, secret, args.instances, lifetime)
    return start_raw(stack, logs, lifetime)


async def quiet(driver: NodeDriver, within: float, still_s: float = 1.5) -> dict[str, Any]:
    """Poll the clients' frame count until it stopped growing for ``still_s`` (or ``within``)."""
    start = time.monotonic()
    last: dict[str, Any] | None = None
    still_since = start
    while True:
        driver.send({"cmd": "count"})
        counts = await driver.expect("counts", 30)
        now = time.monotonic()
        if last is None or counts["frames"] != last["frames"]:
            still_since = now
        elif now - still_since >= still_s or now - start >= within:
            counts["quiet_after_s"] = round(still_since - start, 2)
            return counts
        last = counts
        await asyncio.sleep(0.5)


async def measure(name: str, args: argparse.Namespace, logs: Path, lifetime: float,
                  rec: Recorder) -> dict[str, Any]:
    secret = secrets.token_urlsafe(32)
    tokens = logs / "tokens.txt"
    mint_tokens(tokens, secret, args.connections, f"idle-{secrets.token_hex(3)}")
    with contextlib.ExitStack() as stack:
        target = start_target(stack, name, args, logs, secret, lifetime)
        config = {"urls": target.urls, "tokens_file": str(tokens), "count": args.connections,
                  "rooms": args.rooms, "concurrency": args.concurrency,
                  "max_lifetime_s": int(lifetime)}
        config_path = logs / "idle.json"
        config_path.write_text(json.dumps(config, indent=1))
        driver = NodeDriver("loadgen", IDLE_JS, config_path, logs / "idle.log",
                            BENCH / "loadgen" / "node_modules" / "ws")
        stack.callback(driver.stop)
        await driver.expect("ready", 20)
        await asyncio.sleep(1.0)  # let the servers finish starting up (NATS consumers, GC)
        pids = dict(target.pids)
        rss_before = {proc: rss_bytes(pid) for proc, pid in pids.items()}
        before = snapshot({**pids, "loadgen": driver.child.pid})
        driver.send({"cmd": "open"})
        opened = await driver.expect("opened", args.open_timeout)
        after = snapshot({**pids, "loadgen": driver.child.pid})
        counts = await quiet(driver, within=args.quiet_timeout)
        await asyncio.sleep(args.settle)
        rss_after = {proc: rss_bytes(pid) for proc, pid in pids.items()}
        driver.send({"cmd": "count"})
        final = await driver.expect("counts", 30)
    alive = final["open"]
    growth = {proc: (rss_after[proc] or 0) - (rss_before[proc] or 0) for proc in pids}
    per_conn = {proc: round(g / alive) if alive else None for proc, g in growth.items()}
    primary = [p for p in pids if p.startswith(PRIMARY_PREFIXES)]
    result = {
        "target": name,
        "instances": len(target.urls),
        "connections": args.connections,
        "opened": opened["opened"],
        "failed": opened["failed"],
        "failure_reasons": opened["failure_reasons"],
        "alive": alive,
        "open_seconds": round(opened["seconds"], 3),
        "open_per_s": opened["per_s"],
        "open_latency_ms": opened["latency_ms"],
        "open_cpu": cpu_percent(before, after),
        "frames_after_join": final["frames"],
        "frame_bytes_after_join": final["bytes"],
        "quiet_after_s": counts["quiet_after_s"],
        "rss_before": rss_before,
        "rss_after": rss_after,
        "bytes_per_connection": per_conn,
        "server_bytes_per_connection": (round(sum(growth[p] for p in primary) / alive)
                                        if alive else None),
        "total_bytes_per_connection": round(sum(growth.values()) / alive) if alive else None,
        "server_rss_after_mib": round(sum(rss_after[p] or 0 for p in primary) / MiB, 1),
        "primary": primary,
    }
    rec.write("memory", **result)
    return result


def describe(r: dict[str, Any]) -> str:
    beside = ", ".join(f"{p} {v:,}" for p, v in r["bytes_per_connection"].items()
                       if p not in r["primary"] and v is not None)
    servers = " + ".join(r["primary"])
    cpu = ", ".join(f"{k} {v:.0f}" for k, v in r["open_cpu"].items()
                    if v is not None and k not in ("steal", "softirq"))
    return (f"  [{r['target']}] {r['alive']:,}/{r['connections']:,} open, "
            f"{r['open_per_s']:,.0f}/s (p50 {r['open_latency_ms']['p50']} p99 "
            f"{r['open_latency_ms']['p99']} ms, failed {r['failed']} {r['failure_reasons'] or ''})"
            f"  {servers}: {r['server_bytes_per_connection']:,} B/conn"
            + (f" (beside: {beside})" if beside else "")
            + f"  total {r['total_bytes_per_connection']:,} B/conn; "
            f"{r['frames_after_join']:,} frames after the joins, quiet after "
            f"{r['quiet_after_s']} s; CPU while opening: {cpu}")


def table(results: list[dict[str, Any]]) -> str:
    rows = ["| target | opened / alive | open rate /s (join acked) | p99 ms | server bytes/conn "
            "| beside (bytes/conn) | total bytes/conn | server RSS after MiB "
            "| frames after joins | CPU % while opening |",
            "|" + "---|" * 10]
    for r in results:
        beside = ", ".join(f"{p} {v:,}" for p, v in r["bytes_per_connection"].items()
                           if p not in r["primary"] and v is not None) or "-"
        cpu = ", ".join(f"{k} {v:.0f}" for k, v in r["open_cpu"].items()
                        if v is not None and k not in ("steal", "softirq"))
        rows.append(f"| {r['target']} | {r['opened']:,} / {r['alive']:,} "
                    f"| **{r['open_per_s']:,.0f}** | {r['open_latency_ms']['p99']} "
                    f"| **{r['server_bytes_per_connection']:,}** | {beside} "
                    f"| {r['total_bytes_per_connection']:,} | {r['server_rss_after_mib']} "
                    f"| {r['frames_after_join']:,} | {cpu} |")
    return "\n".join(rows)


async def run(args: argparse.Namespace, logs: Path, rec: Recorder) -> list[dict[str, Any]]:
    from peers import Unavailable

    results = []
    for name in args.targets:
        target_logs = logs / name
        target_logs.mkdir()
        try:
            result = await measure(name, args, target_logs, args.max_minutes * 60, rec)
        except Unavailable as exc:
            print(f"[{name}] SKIPPED: {exc}", file=sys.stderr, flush=True)
            rec.write("skipped", target=name, reason=str(exc))
            continue
        except (RuntimeError, TimeoutError, OSError) as exc:
            print(f"[{name}] FAILED: {exc}", file=sys.stderr, flush=True)
            rec.write("error", target=name, error=str(exc))
            continue
        print(describe(result), flush=True)
        results.append(result)
    return results


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="2,000 connections")
    parser.add_argument("--targets", default=",".join(TARGETS), type=benchproc.comma_list(TARGETS),
                        help="comma list of switchboard, sio, raw (default: all)")
    parser.add_argument("--connections", type=int, default=None, help="10,000 (quick 2,000)")
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=200, help="handshakes in flight")
    parser.add_argument("--instances", type=int, default=2,
                        help="gateways / Node processes (the raw server is one process)")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds after the clients went quiet before RSS is read")
    parser.add_argument("--open-timeout", type=float, default=240.0)
    parser.add_argument("--quiet-timeout", type=float, default=60.0,
                        help="at most this long waiting for presence announcements to stop")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="hard bound on the whole run (default 15, quick 5)")
    parser.add_argument("--out", type=Path, default=None,
                        help="results file (default bench/results/memory-<UTC time>.jsonl)")
    args = parser.parse_args(argv)
    if args.connections is None:
        args.connections = 2000 if args.quick else 10_000
    if not 0 < args.connections <= 19_000:
        parser.error("--connections: 1-19,000 (one Node process holds them, 20,000 fds)")
    if args.max_minutes is None:
        args.max_minutes = 5.0 if args.quick else 15.0
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    out, logs = benchproc.results_files("memory", args.out)
    rec = Recorder(out)
    rec.write("run", args={**vars(args), "out": str(out)}, versions=versions(),
              cpus=os.cpu_count())
    print(f"results: {out}\nlogs:    {logs}", flush=True)
    results: list[dict[str, Any]] = []
    status = 0
    try:
        with time_bound(args.max_minutes * 60):
            results = asyncio.run(run(args, logs, rec))
    except Overtime as exc:
        print(f"ABORTED: {exc}", file=sys.stderr, flush=True)
        rec.write("error", error=str(exc))
        status = 2
    print()
    print(table(results))
    by_name = {r["target"]: r for r in results}
    sb = by_name.get("switchboard")
    for other in ("sio", "raw"):
        peer = by_name.get(other)
        if sb and peer and peer["server_bytes_per_connection"] and peer["open_per_s"]:
            rate = sb["open_per_s"] / peer["open_per_s"]
            size = sb["server_bytes_per_connection"] / peer["server_bytes_per_connection"]
            line = (f"switchboard / {other}: open rate {rate:.2f}x, "
                    f"server bytes per connection {size:.2f}x")
            print(line)
            rec.write("comparison", text=line)
    rec.close()
    return status if len(results) == len(args.targets) else max(status, 1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
