"""One room of several thousand real sockets across two gateways (issue 5, item 4).

Starts nats-server and two gateways exactly as ``bench/fanout.py`` does (``start_switchboard``),
connects ``--members`` raw-ws Socket.IO sockets from one Node process (``bigroom/bigroom.js``;
member *i* on gateway *i* mod 2) and joins them all to ONE room of ``/chat``, plus one
publisher socket per gateway (joined too; its own copies are not counted). The publishers
send ``message:send`` open loop at ``--rate`` messages/s for ``--duration`` s, alternating, so
half the messages start on each gateway and every one crosses NATS to the other.

Reported: per-delivery latency (send -> a member's receive, one clock), the time until the LAST
member had each message (p50/p99 over messages), same- vs cross-gateway latency, loss and
duplicates (exact, per member and message: both must be 0), closes, error acks, the CPU of
each process over the publish window, and each gateway's own fan-out time
(``switchboard_gateway_fanout_seconds``) from ``/metrics``.

    npm ci --prefix bench/bigroom                  # once: ws 8.18.3, pinned
    .venv/bin/python bench/bigroom_sockets.py      # 4,000 members, 20 msg/s for 10 s (< 2 min)
    .venv/bin/python bench/bigroom_sockets.py --rate 5 --gateway-env SB_FANOUT_BATCH=500

Rate limits, the send budget and every other protection stay at their defaults (the chat
limit, 100/s per connection, is far above a publisher's share of ``--rate``). Everything
listens on 127.0.0.1; every child is stopped in ``finally`` and dies with the runner.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchproc import Child, cpu_percent, mint_tokens, scrape_metrics, snapshot
from fanout import LineReader, Overtime, Recorder, start_switchboard, time_bound, versions

BENCH = Path(__file__).resolve().parent
NODE_DIR = BENCH / "bigroom"
RESULTS = BENCH / "results"
DEFAULT_LIMITS = {"SB_CHAT_RATE": "100", "SB_CHAT_BURST": "100"}  # fanout.py raises them


def scrape(url: str) -> dict[str, float]:
    """The gateway's switchboard_gateway_* samples, keyed by name plus labels."""
    return scrape_metrics(url.replace("ws://", "http://"), "switchboard_gateway_")


def delta(after: dict[str, float], before: dict[str, float], prefix: str) -> float:
    return sum(v - before.get(k, 0.0) for k, v in after.items() if k.startswith(prefix))


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))  # inherited by the children


def fmt(q: dict[str, Any] | None) -> str:
    if not q:
        return "-"
    return f"{q['p50']:.1f} / {q['p99']:.1f} (max {q['max']:.1f})"


def report(result: dict[str, Any], cpu: dict[str, float | None],
           fanout: list[dict[str, float]], gateways: int) -> str:
    rows = [
        "| measure | value |",
        "|---|---|",
        f"| members (per gateway) | {result['members']:,} "
        f"({' + '.join(f'{n:,}' for n in result['members_per_gateway'])}) in one room of /chat |",
        f"| messages published | {result['published']} at {result['publish_rate']:.1f}/s "
        f"({result['publishers']} publishers, alternating) |",
        f"| deliveries expected / received | {result['expected']:,} / {result['delivered']:,} |",
        f"| **lost / dup** | **{result['lost']} / {result['dup']}** "
        f"(out of seq order {result['out_of_order']}) |",
        f"| per-delivery latency ms p50 / p99 | {fmt(result['delivery_latency_ms'])} |",
        f"| **last member has it**, ms p50 / p99 over messages | "
        f"**{fmt(result['last_member_latency_ms'])}** "
        f"({result['messages_complete']}/{result['published']} complete) |",
        f"| first member has it, ms p50 / p99 | {fmt(result['first_member_latency_ms'])} |",
        f"| members on the publisher's gateway, ms p50 / p99 | "
        f"{fmt(result['same_gateway_latency_ms'])} |",
        f"| members on the other gateway, ms p50 / p99 | "
        f"{fmt(result['cross_gateway_latency_ms'])} |",
        f"| publish ack ms p50 / p99 | {fmt(result['ack_latency_ms'])} |",
        f"| acks ok / error / pending | {result['acks_ok']} / {result['acks_err']} / "
        f"{result['acks_pending']} |",
        f"| connections closed | {result['closed']} {result['close_codes'] or ''} |",
    ]
    for i in range(gateways):
        f = fanout[i]
        per = f["seconds"] / f["count"] * 1000 if f["count"] else 0.0
        rows.append(f"| gateway-{i}: CPU, fan-out | {cpu.get(f'gateway-{i}')} % of a core; "
                    f"{f['count']:.0f} fan-outs, {per:.2f} ms each "
                    f"({per * 1000 / max(1, result['members_per_gateway'][i]):.2f} µs/member); "
                    f"{f['frames']:,.0f} frames written; closes {f['closes']:.0f} |")
    rows.append(f"| nats-server / node CPU | {cpu.get('nats-server')} % / {cpu.get('node')} % |")
    rows.append(f"| machine / softirq / other CPU | {cpu.get('machine')} / {cpu.get('softirq')} / "
                f"{cpu.get('unattributed')} % (max {100 * (os.cpu_count() or 1)}) |")
    rows.append(f"| node's worst timer gap while publishing | "
                f"{result['max_tick_gap_ms']:.1f} ms |")
    return "\n".join(rows)


def verdict(result: dict[str, Any]) -> list[str]:
    reasons = []
    for key in ("lost", "dup", "out_of_order", "closed", "acks_err", "acks_pending"):
        if result[key]:
            reasons.append(f"{key} {result[key]}")
    if result["messages_complete"] != result["published"]:
        reasons.append(f"only {result['messages_complete']} messages reached every member")
    return reasons


def run(args: argparse.Namespace, logs: Path, rec: Recorder) -> int:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node (20+) is not on PATH")
    if not (NODE_DIR / "node_modules" / "ws").is_dir():
        raise RuntimeError("run `npm ci --prefix bench/bigroom` first")
    secret = secrets.token_urlsafe(32)
    extra = {**DEFAULT_LIMITS, **dict(kv.split("=", 1) for kv in args.gateway_env)}
    with contextlib.ExitStack() as stack:
        started = time.monotonic()
        target = start_switchboard(stack, logs, secret, args.gateways, extra)
        print(f"nats-server + {args.gateways} gateways ready in "
              f"{time.monotonic() - started:.1f} s: {', '.join(target.urls)}", flush=True)
        tokens = logs / "tokens.txt"
        mint_tokens(tokens, secret, args.members + args.gateways, f"big-{secrets.token_hex(3)}")
        config = {
            "urls": target.urls, "members": args.members, "tokens_file": str(tokens),
            "rate": args.rate, "duration_s": args.duration, "grace_s": args.grace,
            "text_bytes": args.text_bytes, "max_lifetime_s": int(args.max_seconds),
            "run_tag": secrets.token_hex(4),
        }
        config_path = logs / "bigroom-config.json"
        config_path.write_text(json.dumps(config, indent=1))
        child = Child("node", [node, str(NODE_DIR / "bigroom.js"), "--config", str(config_path)],
                      logs / "bigroom-node.log", stdin=subprocess.PIPE, stdout_pipe=True)
        stack.callback(child.stop)
        reader = LineReader(child)
        ready = reader.event(90)
        if ready.get("event") != "ready":
            raise RuntimeError(f"node did not get ready: {ready}")
        print(f"{ready['connections']:,} sockets connected and joined in "
              f"{ready['setup_ms'] / 1000:.1f} s", flush=True)
        rec.write("setup", urls=target.urls, pids=target.pids, node=ready)
        time.sleep(1.0)  # let the joins' work finish before the CPU window
        pids = {**target.pids, "node": child.pid}
        metrics_before = [scrape(url) for url in target.urls]
        assert child.proc.stdin is not None
        child.proc.stdin.write(b"go\n")
        child.proc.stdin.flush()
        before = after = None
        while True:
            event = reader.event(args.duration + args.grace + 30)
            kind = event.get("event")
            if kind == "window_start":
                before = snapshot(pids)
            elif kind == "window_end":
                after = snapshot(pids)
            elif kind == "result":
                result = event
                break
            elif kind == "fatal":
                raise RuntimeError(f"node: {event}")
        assert before is not None and after is not None
        cpu = cpu_percent(before, after)
        metrics_after = [scrape(url) for url in target.urls]
        fanout = [{
            "seconds": delta(a, b, "switchboard_gateway_fanout_seconds_sum"),
            "count": delta(a, b, "switchboard_gateway_fanout_seconds_count"),
            "frames": delta(a, b, "switchboard_gateway_packets_out_total"),
            "closes": delta(a, b, "switchboard_gateway_closes_total"),
        } for a, b in zip(metrics_after, metrics_before, strict=True)]
        with contextlib.suppress(OSError, ValueError):
            child.proc.stdin.write(b"quit\n")
            child.proc.stdin.flush()
        reasons = verdict(result)
        rec.write("result", result=result, cpu=cpu, gateway_fanout=fanout, passed=not reasons,
                  reasons=reasons)
        print()
        print(report(result, cpu, fanout, args.gateways))
        print()
        print("PASS (lost 0, dup 0, no close, every publish acked, every message reached "
              "every member)" if not reasons else "FAIL: " + ", ".join(reasons))
        return 0 if not reasons else 1


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="One room of thousands of sockets, 2 gateways.")
    parser.add_argument("--members", type=int, default=4000)
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--rate", type=float, default=20.0, help="messages/s (all publishers)")
    parser.add_argument("--duration", type=float, default=10.0, help="publish window, s")
    parser.add_argument("--grace", type=float, default=10.0,
                        help="wait this long after the window for late deliveries, s")
    parser.add_argument("--text-bytes", type=int, default=100)
    parser.add_argument("--gateway-env", action="append", default=[], metavar="SB_X=VALUE",
                        help="extra environment for the gateways (repeatable)")
    parser.add_argument("--max-seconds", type=float, default=120.0,
                        help="hard bound on the whole run")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    raise_fd_limit(2 * (args.members + args.gateways) + 1024)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    logs = RESULTS / f"bigroom-sockets-{stamp}-logs"
    logs.mkdir()
    rec = Recorder(RESULTS / f"bigroom-sockets-{stamp}.jsonl")
    rec.write("run", args=vars(args), versions=versions(), cpus=os.cpu_count())
    print(f"results: {rec.path}\nlogs:    {logs}", flush=True)
    started = time.monotonic()
    try:
        with time_bound(args.max_seconds):
            return run(args, logs, rec)
    except (RuntimeError, TimeoutError, OSError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr, flush=True)
        rec.write("error", error=str(exc))
        return 2
    except Overtime as exc:
        print(f"ABORTED: {exc}", file=sys.stderr, flush=True)
        rec.write("error", error=str(exc))
        return 3
    finally:
        print(f"total {time.monotonic() - started:.0f} s")
        rec.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
