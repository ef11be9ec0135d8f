"""S1 room fan-out with a share of the members on HTTP long-polling behind a balancer:
Switchboard (round-robin, no stickiness) against Socket.IO 4.8 (sticky), in one run.

S1's shape (10 rooms of 100 members, 10 publishers that join their room, ~110-byte
``message:send`` frames published open loop, loss and duplicates counted exactly) with
``--share`` (25 %) of every room's members speaking Engine.IO long-polling
(``loadgen/polling.js``) through one ``balancer.py`` process; the publishers and the other
members stay on WebSocket, straight to the servers, half on each.

- **Switchboard** (2 gateways + nats-server): the balancer is round-robin per TCP connection
  and every polling request is a TCP connection of its own, so about half of each session's
  requests land on the gateway that does not own it and are forwarded over NATS.
- **Socket.IO 4.8** (2 Node processes + redis adapter) needs sticky sessions: the balancer
  hashes the client's source address (``--hash-source``) and each polling member binds its
  requests to one of 127.0.0.2-127.0.0.17, so a session stays on one process (8 addresses
  each).

Both targets are up at once, each with its own load generator connected; every rate of
``--rates`` runs on one, then on the other (a busy neighbour weighs on both alike). With
``--sweep``, ``fanout.py``'s sweep (ramp, bisect, confirm; pass = p99 < 100 ms, nothing lost)
finds each target's max sustained rate instead, one target after the other.

    .venv/bin/python bench/polling_fanout.py [--quick] [--share 0.25] [--rates 100,200,400]
        [--sweep] [--targets switchboard,sio]

Results: bench/results/polling-fanout-<time>.jsonl (``fanout.py``'s ``step`` lines, each
with the latency of polling and of WebSocket members apart and the polling requests made,
and one ``result`` line per target) and a table on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchproc
from benchproc import Child, free_port, scrape_metrics
from fanout import (
    FULL,
    NOISE_LIMIT,
    P99_LIMIT_MS,
    QUICK,
    LineReader,
    Overtime,
    Plan,
    Recorder,
    Scenario,
    Sweep,
    Target,
    loadgen_factory,
    start_switchboard,
    time_bound,
    versions,
)

BENCH = Path(__file__).resolve().parent
BALANCER = BENCH / "balancer.py"
TARGETS = ("switchboard", "sio", "switchboard-sticky")
SOURCES = [f"127.0.0.{n}" for n in range(2, 18)]  # polling members' source addresses, in turn
# does the balancer hash the source address? (switchboard-sticky: what forwarding costs)
STICKY = {"switchboard": False, "sio": True, "switchboard-sticky": True}


def start_balancer(stack: contextlib.ExitStack, target: Target, logs: Path, sticky: bool,
                   lifetime_s: float) -> Child:
    """One ``balancer.py`` process in front of the target's servers (all of them active)."""
    port = free_port()
    upstreams = ",".join(url.removeprefix("ws://") for url in target.urls)
    argv = [sys.executable, str(BALANCER), "--port", str(port), "--upstreams", upstreams,
            "--active", str(len(target.urls)), "--max-seconds", str(int(lifetime_s))]
    child = Child("balancer", argv + (["--hash-source"] if sticky else []),
                  logs / f"balancer-{target.name}.log", stdout_pipe=True)
    stack.callback(child.stop)
    line = LineReader(child).line(20).decode()
    if line != f"READY {port}":
        raise RuntimeError(f"balancer said {line!r}:\n{child.log_tail()}")
    target.pids["balancer"] = child.pid
    target.children.append(child)
    target.wire["polling_url"] = f"http://127.0.0.1:{port}"
    return child


def balancer_counters(child: Child) -> dict[str, Any]:
    """What the balancer printed at exit (accepted connections, relayed per upstream); stops
    it."""
    child.proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.proc.wait(5)
    text = b""
    if child.proc.poll() is not None and child.proc.stdout is not None:
        with contextlib.suppress(OSError, ValueError):
            text = child.proc.stdout.read()
    child.stop()
    for line in text.decode(errors="replace").splitlines():
        if line.startswith('{"event": "stats"'):
            stats: dict[str, Any] = json.loads(line)
            return stats
    return {}


def forwarded(target: Target) -> dict[str, float]:
    """Switchboard's count of polling requests forwarded to the owner, summed over gateways."""
    totals: dict[str, float] = {}
    for url in target.urls:
        with contextlib.suppress(OSError):
            samples = scrape_metrics(url.replace("ws://", "http://"),
                                     "switchboard_gateway_polling_forwarded")
            for key, value in samples.items():
                if key.startswith("switchboard_gateway_polling_forwarded_total"):
                    label = key[key.index("{"):]
                    totals[label] = totals.get(label, 0.0) + value
    return totals


def start_target(name: str, stack: contextlib.ExitStack, logs: Path, secret: str,
                 scenario: Scenario, lifetime_s: float) -> Target:
    """The servers (their logs in ``logs/<name>``), under ``name``."""
    (logs / name).mkdir(parents=True, exist_ok=True)
    if name.startswith("switchboard"):
        target = start_switchboard(stack, logs / name, secret, scenario.gateways, {})
    else:
        import peers

        target = peers.start_sio(stack, logs / name, secret, scenario.gateways, lifetime_s)
    target.name = name
    return target


class Side:
    """One target up with its balancer and a load generator connected: steps run on it."""

    def __init__(self, name: str, stack: contextlib.ExitStack, args: argparse.Namespace,
                 plan: Plan, scenario: Scenario, logs: Path, rec: Recorder) -> None:
        secret = secrets.token_urlsafe(32)
        lifetime = args.max_minutes * 60
        self.name = name
        self.target = start_target(name, stack, logs, secret, scenario, lifetime)
        self.balancer = start_balancer(stack, self.target, logs, STICKY[name], lifetime)
        self.target.wire.update(polling_share=str(args.share), polling_sources=",".join(SOURCES),
                                polling_keep_alive="true" if args.keep_alive else "false")
        self.share = args.share
        make_loadgen = loadgen_factory(self.target, scenario, secret, logs, lifetime, rec)
        self.sweep = Sweep(self.target, make_loadgen, plan, rec)
        stack.callback(self.sweep.close)

    def summary(self, best: dict[str, Any] | None) -> dict[str, Any]:
        """The ``result`` line (``fanout.py``'s, so compare.py reads it); stops the balancer."""
        self.sweep.close()
        return {"target": self.name, "namespace": "/chat", "held": best is not None,
                "confirm": best, "serving": sorted(self.target.pids), "share": self.share,
                "sticky": STICKY[self.name], "forwarded": forwarded(self.target),
                "balancer": balancer_counters(self.balancer)}


def open_side(name: str, stack: contextlib.ExitStack, args: argparse.Namespace, plan: Plan,
              scenario: Scenario, logs: Path, rec: Recorder) -> Side | None:
    """The target up, or ``None`` (said and recorded) when it cannot run on this machine."""
    from peers import Unavailable

    try:
        return Side(name, stack, args, plan, scenario, logs, rec)
    except Unavailable as exc:
        print(f"[{name}] SKIPPED: {exc}", file=sys.stderr, flush=True)
        rec.write("skipped", target=name, reason=str(exc))
        return None


def run_sweeps(args: argparse.Namespace, plan: Plan, scenario: Scenario, logs: Path,
               rec: Recorder, summaries: list[dict[str, Any]]) -> None:
    """``fanout.py``'s sweep on each target in turn: the max sustained rate."""
    for name in args.targets:
        with contextlib.ExitStack() as stack:
            side = open_side(name, stack, args, plan, scenario, logs, rec)
            if side is None:
                continue
            summary = side.summary(side.sweep.run())
            rec.write("result", **summary)
            summaries.append(summary)


def run_fixed(args: argparse.Namespace, plan: Plan, scenario: Scenario, logs: Path,
              rec: Recorder, summaries: list[dict[str, Any]]) -> None:
    """Every target up at once; each rate of ``--rates`` runs on one target, then the next (so
    a busy neighbour weighs on both alike), no re-runs."""
    with contextlib.ExitStack() as stack:
        opened = [open_side(name, stack, args, plan, scenario, logs, rec) for name in args.targets]
        sides = [side for side in opened if side is not None]
        best: dict[str, dict[str, Any] | None] = {side.name: None for side in sides}
        steps: dict[str, list[dict[str, Any]]] = {side.name: [] for side in sides}
        for rate in args.rates:
            if args.quiet_wait > 0:  # (our processes are idle between steps)
                benchproc.wait_quiet(NOISE_LIMIT, args.quiet_wait)
            for side in sides:
                side.sweep.reruns_left = 0
                ok, result = side.sweep.run_step("fixed", rate, args.step_seconds)
                steps[side.name].append(result)
                if ok:  # the rates go up: the last passing one is the highest
                    best[side.name] = result
        for side in sides:
            summary = {**side.summary(best[side.name]), "steps": steps[side.name]}
            rec.write("result", **summary)
            summaries.append(summary)


def serving(step: dict[str, Any], names: list[str]) -> float:
    """CPU % of the target's own processes (servers, broker, balancer) in a step."""
    return round(sum(step["cpu"].get(name) or 0.0 for name in names), 1)


def figures(step: dict[str, Any], names: list[str]) -> dict[str, Any]:
    cpu = serving(step, names)
    return {"deliveries_per_s": round(step["delivered_per_s"]),
            "publishes_per_s": round(step["publish_rate"], 1),
            "p99_ms": step["latency_ms"]["p99"],
            "p99_polling_ms": step["latency_polling_ms"]["p99"],
            "p99_websocket_ms": step["latency_websocket_ms"]["p99"],
            "lost": step["lost"], "passed": step["passed"],
            "polling_requests_per_s": round(step["polling_requests"] / step["duration_s"]),
            "serving_cpu": cpu,
            "per_core_s": round(step["delivered_per_s"] / (cpu / 100)) if cpu else None,
            "other_cpu": step["cpu"].get("unattributed")}


HEAD = ("| publishes/s | target | deliveries/s | p99 ms all / polling / WebSocket members | lost "
        "| polling requests/s | serving CPU % | deliveries per serving core-s | other CPU % "
        "| pass |\n|---:|---|---:|---|---:|---:|---:|---:|---:|---|")


def table_row(name: str, fig: dict[str, Any]) -> str:
    return (f"| {fig['publishes_per_s']:,.0f} | {name} | **{fig['deliveries_per_s']:,}** "
            f"| {fig['p99_ms']} / {fig['p99_polling_ms']} / {fig['p99_websocket_ms']} "
            f"| {fig['lost']} | {fig['polling_requests_per_s']:,} | {fig['serving_cpu']} "
            f"| {fig['per_core_s'] or 0:,} | {fig['other_cpu']} "
            f"| {'yes' if fig['passed'] else 'no'} |")


PAIRS = (("switchboard", "sio"), ("switchboard", "switchboard-sticky"))  # the ratios shown


def ratio_text(names: tuple[str, str], a: dict[str, Any], b: dict[str, Any]) -> str:
    per_core = (f"{a['per_core_s'] / b['per_core_s']:.2f}x"
                if a["per_core_s"] and b["per_core_s"] else "-")
    delivered = a["deliveries_per_s"] / max(1, b["deliveries_per_s"])
    return (f"at {a['publishes_per_s']:,.0f} / {b['publishes_per_s']:,.0f} publishes/s, "
            f"{names[0]} / {names[1]}: deliveries/s {delivered:.2f}x, per serving core-s "
            f"{per_core} (serving CPU {a['serving_cpu']} vs {b['serving_cpu']} %); p99 polling "
            f"members {a['p99_polling_ms']} vs {b['p99_polling_ms']} ms; lost {a['lost']} vs "
            f"{b['lost']}")


def report(summaries: list[dict[str, Any]], rec: Recorder) -> None:
    """The table (every fixed step, or each sweep's confirm step) and the ratios."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for summary in summaries:
        steps = summary.get("steps") or [s for s in [summary["confirm"]] if s]
        rows[summary["target"]] = [figures(s, summary["serving"]) for s in steps]
    print("\n" + HEAD)
    for index in range(max((len(figs) for figs in rows.values()), default=0)):
        for name, figs in rows.items():
            if index < len(figs):
                print(table_row(name, figs[index]))
    for names in PAIRS:
        for a, b in zip(rows.get(names[0], []), rows.get(names[1], []), strict=False):
            text = ratio_text(names, a, b)
            print(text)
            rec.write("comparison", text=text, of=names, figures=[a, b])
    for summary in summaries:
        relayed = summary["balancer"].get("relayed") or []
        print(f"{summary['target']}: the balancer relayed {sum(relayed):,} connections "
              f"({' + '.join(f'{n:,}' for n in relayed)} per upstream)")
        ok = {k: v for k, v in summary["forwarded"].items() if 'outcome="ok"' in k}
        if ok:
            print(f"{summary['target']}: polling requests forwarded over NATS, run total "
                  f"(without keep-alive a request is a connection): {ok}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="short sweep (fanout.py's)")
    parser.add_argument("--targets", default=",".join(TARGETS),
                        type=benchproc.comma_list(TARGETS))
    parser.add_argument("--share", type=float, default=0.25,
                        help="of every room's members, on long-polling (0.25)")
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--members-per-room", type=int, default=100)
    parser.add_argument("--publishers", type=int, default=10)
    parser.add_argument("--rates", type=lambda t: [float(x) for x in t.split(",")],
                        default=None, help="publishes/s of the fixed steps, comma list "
                        "(default 25,50,100,150,200; quick 25,50,100)")
    parser.add_argument("--step-seconds", type=float, default=None,
                        help="length of a fixed step (default 5, quick 3)")
    parser.add_argument("--quiet-wait", type=float, default=30.0, metavar="S",
                        help="before each rate, wait up to S s for the box's neighbours to go "
                        "quiet (a shared machine; 0: do not wait)")
    parser.add_argument("--sweep", action="store_true",
                        help="fanout.py's sweep for the max sustained rate instead, one "
                        "target after the other")
    parser.add_argument("--keep-alive", action="store_true",
                        help="polling members keep their TCP connections (2 each) open")
    parser.add_argument("--start-rate", type=float, default=50.0,
                        help="publishes/s of the sweep's first step (50)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="hard bound on the whole run (default 20, quick 6)")
    args = parser.parse_args(argv)
    if args.max_minutes is None:
        args.max_minutes = 6.0 if args.quick else 20.0
    if args.rates is None:
        args.rates = [25.0, 50.0, 100.0] if args.quick else [25.0, 50.0, 100.0, 150.0, 200.0]
    if args.step_seconds is None:
        args.step_seconds = 3.0 if args.quick else 5.0
    if not 0 < args.share <= 1:
        parser.error("--share must be in (0, 1]")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    plan = QUICK if args.quick else FULL
    plan = replace(plan, start_rate=args.start_rate)
    scenario = Scenario(rooms=args.rooms, members_per_room=args.members_per_room,
                        publishers=args.publishers)
    out, logs = benchproc.results_files("polling-fanout", args.out)
    rec = Recorder(out)
    rec.write("run", args={**vars(args), "out": str(out)}, plan=asdict(plan),
              scenario=asdict(scenario), versions=versions(),
              cpus=os.cpu_count(), pass_rule={"p99_ms_below": P99_LIMIT_MS, "lost": 0})
    print(f"results: {out}\nlogs:    {logs}", flush=True)
    summaries: list[dict[str, Any]] = []
    status = 0
    try:
        with time_bound(args.max_minutes * 60):
            (run_sweeps if args.sweep else run_fixed)(args, plan, scenario, logs, rec,
                                                      summaries)
    except (RuntimeError, TimeoutError, OSError, Overtime) as exc:
        rec.write("error", error=str(exc))
        print(f"STOPPED: {exc}", file=sys.stderr, flush=True)
        status = 2 if isinstance(exc, Overtime) else 1
    finally:
        report(summaries, rec)
        rec.close()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
