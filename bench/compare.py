"""Switchboard against the peer users would pick instead, in one command and one table.

Runs, one after the other and each bounded in time, the project's benchmarks for the three
targets (Switchboard = 2 gateways + nats-server; Socket.IO 4.8 + redis adapter = 2 Node
processes + redis-server; raw = one ``websockets`` process):

- **S1** room fan-out, durable ``/chat`` (``fanout.py --targets switchboard,sio,raw``);
- **S1** on Switchboard's ephemeral ``/live-updates`` (``fanout.py --namespace /live-updates``;
  Switchboard only unless ``--live-all``: the peers have no durable/ephemeral distinction, so
  their /chat figures stand for both);
- **S2** idle connections: open rate and memory per connection (``memory.py``, Switchboard
  with its presence service, as devcluster runs it);
- **S3** connects/s, 100 handshakes in flight (``handshakes.py --instances 2 --presence
  --skip-sends``);
- **hooks** (``--only hooks``) acked application events through 2 gateways and 2 NATS workers
  against Socket.IO answering in-process (``hooks.py``; no raw target);
- **polling** (``--only polling``) S1 with a quarter of the members on long-polling through a
  balancer, round-robin for Switchboard and sticky for Socket.IO (``polling_fanout.py``; the
  highest of its fixed rates that passed; no raw target);
- with ``--recovery``, the reconnect storm (``recovery.py``, Switchboard only), as its own CLI
  runs it; its result lines are included when it wrote any.

Then prints one table: each figure per target, Switchboard / Socket.IO, the CPU of every process
(100 = one core) and, for S1, deliveries per core-second of the serving processes (gateways +
NATS against Socket.IO's Node processes + redis).

    .venv/bin/python bench/compare.py [--quick] [--recovery] [--only s1,s1-live,s2,s3]

Results: bench/results/compare-<time>.jsonl (one ``scenario`` line each, then ``table``), and
each benchmark's own file beside it (compare-<time>-<scenario>.jsonl, logs in -logs/).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchproc
from benchproc import Child
from fanout import MACHINE_KEYS, Overtime, Recorder, label, serving_cpu, time_bound

BENCH = Path(__file__).resolve().parent
TARGETS = ("switchboard", "sio", "raw")
SCENARIOS = ("s1", "s1-live", "s2", "s3", "hooks", "polling", "recovery")
NAMES = {"switchboard": "Switchboard", "sio": "Socket.IO-Node + redis", "raw": "raw websockets"}


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    lines = []
    for raw in path.read_text().splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            lines.append(json.loads(raw))
    return lines


def export_tree(rev: str, into: Path) -> tuple[str, Path]:
    """The project as committed at ``rev`` (``git archive``) in ``into``, with the benchmarks
    themselves as committed at HEAD (so an old revision is measured by today's harness) and
    their installed ``node_modules`` linked in; returns the short hash and the folder."""
    repo = BENCH.parent

    def extract(tree: str, *paths: str) -> None:
        archive = subprocess.run(["git", "archive", "--format=tar", tree, *paths], cwd=repo,
                                 capture_output=True, check=True, timeout=120).stdout
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True, timeout=120)

    short = subprocess.run(["git", "rev-parse", "--short", rev], cwd=repo, capture_output=True,
                           text=True, check=True, timeout=30).stdout.strip()
    extract(short)
    shutil.rmtree(into / "bench", ignore_errors=True)
    extract("HEAD", "bench")
    for modules in BENCH.glob("*/node_modules"):
        link = into / "bench" / modules.parent.name / "node_modules"
        if link.parent.is_dir() and not link.exists():
            link.symlink_to(modules)
    return short, into


def run_benchmark(name: str, argv: list[str], logs: Path, bound_s: float,
                  source: Path) -> tuple[int, str]:
    """``python <argv>`` in ``source`` as a child (dies with us), its output echoed, stopped
    after ``bound_s`` (SIGTERM: the benchmark's own ``finally`` stops its children)."""
    log_path = logs / f"{name}.out"
    env = {**os.environ, "PYTHONPATH": str(source)}
    child = Child(name, [sys.executable, *argv], log_path, cwd=source, env=env)
    print(f"\n== {name}: {' '.join(argv)} (bound {bound_s / 60:.0f} min)", flush=True)
    deadline = time.monotonic() + bound_s
    seen = 0
    try:
        while True:
            done = child.proc.poll() is not None
            text = log_path.read_text(errors="replace")
            if len(text) > seen:
                sys.stdout.write("".join(f"   {line}\n" for line in
                                         text[seen:].splitlines() if line.strip()))
                sys.stdout.flush()
                seen = len(text)
            if done:
                break
            if time.monotonic() > deadline:
                print(f"   {name}: over its bound, stopping it", flush=True)
                break
            time.sleep(1.0)
    finally:
        child.stop(timeout=20)
    return child.proc.returncode, log_path.read_text(errors="replace")


# -- figures per scenario ------------------------------------------------------------------------


def procs(cpu: dict[str, float | None] | None, skip: tuple[str, ...] = ()) -> str:
    """``gateway-0 48, nats-server 13, loadgen 70`` (machine figures left out)."""
    if not cpu:
        return "-"
    return ", ".join(f"{k} {v:.0f}" for k, v in cpu.items()
                     if v is not None and k not in MACHINE_KEYS and k not in skip)


def by_target(lines: list[dict[str, Any]], kind: str,
              figures: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``figures(line)`` of each result line of ``kind``, by target; skipped and failed targets
    say why."""
    found: dict[str, dict[str, Any]] = {}
    for line in lines:
        if line.get("type") == "skipped":
            found[line["target"]] = {"skipped": line["reason"]}
        elif line.get("type") == "error" and line.get("target"):
            found[line["target"]] = {"failed": line["error"]}
        elif line.get("type") == kind:
            found[line["target"]] = figures(line)
    return found


def s1_figures(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each target's confirm step; when none held, its best passing step of the sweep, marked
    ``unconfirmed`` (it passed a short step but not the 10 s one)."""
    best: dict[str, dict[str, Any]] = {}
    for line in lines:
        if line.get("type") == "step" and line.get("passed"):
            seen = best.get(line["target"])
            if seen is None or line["delivered_per_s"] > seen["delivered_per_s"]:
                best[line["target"]] = line
    found = by_target(lines, "result", s1_line)
    for target, fig in found.items():
        if fig.get("held") is False and target in best:
            summary = next(line for line in lines
                           if line.get("type") == "result" and line["target"] == target)
            found[target] = {**s1_line({**summary, "confirm": best[target]}),
                             "unconfirmed": True}
    return found


def s1_line(line: dict[str, Any]) -> dict[str, Any]:
    confirm = line.get("confirm")
    if not confirm:
        return {"held": False}
    serving = serving_cpu(line)
    return {
        "label": label(line),
        "phase": confirm.get("phase"),
        "deliveries_per_s": round(confirm["delivered_per_s"]),
        "publishes_per_s": round(confirm["publish_rate"], 1),
        "p99_ms": confirm["latency_ms"]["p99"],
        "serving_cpu": serving,
        "per_core_s": round(confirm["delivered_per_s"] / (serving / 100)) if serving else None,
        "cpu": confirm["cpu"],
    }


def s2_line(line: dict[str, Any]) -> dict[str, Any]:
    return {
        "open_per_s": line["open_per_s"], "alive": line["alive"],
        "connections": line["connections"],
        "server_bytes": line["server_bytes_per_connection"],
        "beside_bytes": {p: v for p, v in line["bytes_per_connection"].items()
                         if p not in line["primary"]},
        "total_bytes": line["total_bytes_per_connection"],
        "cpu": line["open_cpu"],
    }


def s3_line(line: dict[str, Any]) -> dict[str, Any]:
    return {"connects_per_s": line["connects_per_s"], "p99_ms": line["latency_ms"]["p99"],
            "failures": line["failures"], "cpu": line["cpu"]}


def hooks_line(line: dict[str, Any]) -> dict[str, Any]:
    top, half = line.get("max"), line.get("half") or {}
    if not top:
        return {"held": False}
    return {"events_per_s": round(top["acked_per_s"]), "p99_ms": top["latency_ms"]["p99"],
            "half_p50_ms": (half.get("latency_ms") or {}).get("p50"),
            "half_p99_ms": (half.get("latency_ms") or {}).get("p99"), "cpu": top["cpu"],
            "unconfirmed": line.get("unconfirmed", False)}


def recovery_figures(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    runs = [line for line in lines if line.get("type") == "run"]
    if not runs:
        return {}
    last = [" ".join(filter(None, [r.get("mode"),
                                   fmt((r.get("recovered_ms") or {}).get("last"))]))
            for r in runs]
    return {"switchboard": {
        "runs": len(runs),
        "clients": runs[0].get("clients"),
        "recovered": [r.get("recovered") for r in runs],
        "last_recovered_ms": last,
        "passed": [r.get("passed") for r in runs],
        "cpu": runs[-1].get("cpu"),
    }}


# -- the table -----------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, float | int):
        return f"{value:,.{digits}f}"
    return str(value)


def ratio(a: Any, b: Any) -> str:
    if not isinstance(a, int | float) or not isinstance(b, int | float) or not b:
        return "-"
    return f"**{a / b:.2f}x**"


Row = tuple[str, Callable[[dict[str, Any]], Any], int]


def rows_for(title: str, figures: dict[str, dict[str, Any]], rows: list[Row],
             out: list[str], fallback: dict[str, dict[str, Any]] | None = None) -> None:
    """Table rows of one scenario; a peer it did not run takes ``fallback``'s figures."""
    for name, get, digits in rows:
        cells = []
        values = {}
        for target in TARGETS:
            fig = figures.get(target)
            if not fig and target != "switchboard":
                fig = (fallback or {}).get(target)
            if not fig:
                cells.append("not run")
                continue
            if "skipped" in fig or "failed" in fig:
                cells.append("skipped" if "skipped" in fig else "failed")
                continue
            if fig.get("held") is False:
                cells.append("no rate held")
                continue
            values[target] = value = get(fig)
            mark = " (/chat)" if fallback and target not in figures and value is not None else ""
            if fig.get("unconfirmed") and value is not None:
                mark += " (unconfirmed)"
            cells.append((fmt(value, digits) if not isinstance(value, str) else value) + mark)
        out.append(f"| {title} {name} | " + " | ".join(cells) + " | "
                   + ratio(values.get("switchboard"), values.get("sio")) + " |")


def other_cpu(fig: dict[str, Any]) -> str:
    """CPU of everything outside the benchmark in the window (a busy neighbour), not a ratio."""
    value = (fig.get("cpu") or {}).get("unattributed")
    return "-" if value is None else f"{value:.0f}"


def beside(fig: dict[str, Any]) -> str:
    return ", ".join(f"{p} {v:,}" for p, v in fig["beside_bytes"].items()) or "-"


def table(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    out = ["| figure | " + " | ".join(NAMES[t] for t in TARGETS) + " | Switchboard / Socket.IO |",
           "|---|" + "---:|" * len(TARGETS) + "---:|"]
    s1_rows: list[Row] = [
        ("max sustained deliveries/s", lambda f: f["deliveries_per_s"], 0),
        ("p99 ms at that rate", lambda f: f["p99_ms"], 1),
        ("deliveries per serving core-s", lambda f: f["per_core_s"], 0),
        ("serving CPU %", lambda f: f["serving_cpu"], 0),
        ("CPU % per process", lambda f: procs(f["cpu"]), 0),
        ("other processes' CPU % (the box's neighbours)", other_cpu, 0),
    ]
    if "s1" in results:
        rows_for("S1 /chat", results["s1"], s1_rows, out)
    if "s1-live" in results:
        rows_for("S1 /live-updates", results["s1-live"], s1_rows, out, results.get("s1"))
    if "s2" in results:
        rows_for("S2", results["s2"], [
            ("connections alive", lambda f: f"{f['alive']:,} / {f['connections']:,}", 0),
            ("open rate /s (join acked)", lambda f: f["open_per_s"], 0),
            ("server bytes per connection", lambda f: f["server_bytes"], 0),
            ("beside it (bytes per connection)", beside, 0),
            ("all serving processes, bytes per connection", lambda f: f["total_bytes"], 0),
            ("CPU % per process while opening", lambda f: procs(f["cpu"]), 0),
            ("other processes' CPU % while opening", other_cpu, 0),
        ], out)
    if "s3" in results:
        rows_for("S3", results["s3"], [
            ("connects/s", lambda f: f["connects_per_s"], 0),
            ("handshake p99 ms", lambda f: f["p99_ms"], 1),
            ("CPU % per process", lambda f: procs(f["cpu"]), 0),
            ("other processes' CPU %", other_cpu, 0),
        ], out)
    if "hooks" in results:
        rows_for("hooks", results["hooks"], [
            ("max sustained acked events/s (p99 < 50 ms)", lambda f: f["events_per_s"], 0),
            ("p99 ms at that rate", lambda f: f["p99_ms"], 1),
            ("p50 ms at half of it", lambda f: f["half_p50_ms"], 2),
            ("p99 ms at half of it", lambda f: f["half_p99_ms"], 2),
            ("CPU % per process", lambda f: procs(f["cpu"]), 0),
            ("other processes' CPU %", other_cpu, 0),
        ], out)
    if "polling" in results:
        rows_for("S1 25 % polling", results["polling"], s1_rows, out)
    if results.get("recovery"):
        rows_for("reconnect storm", results["recovery"], [
            ("clients", lambda f: f["clients"], 0),
            ("gateway stopped -> last client recovered, ms (per run)",
             lambda f: ", ".join(f["last_recovered_ms"]), 0),
            ("passed", lambda f: ", ".join(str(v) for v in f["passed"]), 0),
        ], out)
    return "\n".join(out)


def plan(args: argparse.Namespace, stem: Path) -> list[tuple[str, list[str], float]]:
    """(scenario, argv, bound in seconds) of each benchmark to run, in order."""
    quick = ["--quick"] if args.quick else []
    s1_minutes = 10 if args.quick else 30
    live_targets = ",".join(TARGETS) if args.live_all else "switchboard"
    steps = {
        "s1": ["bench/fanout.py", *quick, "--targets", ",".join(TARGETS),
               "--max-minutes", str(s1_minutes)],
        "s1-live": ["bench/fanout.py", *quick, "--targets", live_targets,
                    "--namespace", "/live-updates", "--max-minutes", str(s1_minutes // 2)],
        "s2": ["bench/memory.py", *quick, "--max-minutes", "6" if args.quick else "15"],
        "s3": ["bench/handshakes.py", "--instances", "2", "--presence", "--skip-sends",
               "--seconds", "3" if args.quick else "5",
               "--tokens", "10000" if args.quick else "40000"],
        "hooks": ["bench/hooks.py", "--max-minutes", "4.5"],
        "polling": ["bench/polling_fanout.py", *quick, "--max-minutes", "8"],
        "recovery": ["bench/recovery.py", *quick],
    }
    bounds = {"s1": s1_minutes * 60 + 60, "s1-live": s1_minutes * 30 + 60,
              "s2": (6 if args.quick else 15) * 60 + 60, "s3": 200, "hooks": 320, "polling": 540,
              "recovery": 600}
    chosen = [s for s in SCENARIOS if s in args.only]
    if args.recovery and "recovery" not in chosen:
        chosen.append("recovery")
    result = []
    for scenario in chosen:
        argv = steps[scenario]
        if scenario != "recovery":  # recovery.py picks its own file and prints its name
            argv = [*argv, "--out", str(stem.with_name(f"{stem.name}-{scenario}.jsonl"))]
        result.append((scenario, argv, bounds[scenario]))
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="every benchmark's quick variant")
    parser.add_argument("--only", default="s1,s1-live,s2,s3", type=benchproc.comma_list(SCENARIOS),
                        help="comma list of s1, s1-live, s2, s3, hooks, polling, recovery "
                        "(default: the first 4)")
    parser.add_argument("--recovery", action="store_true",
                        help="also run bench/recovery.py (Switchboard's reconnect storm)")
    parser.add_argument("--live-all", action="store_true",
                        help="run the /live-updates variant for the peers too")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="hard bound on the whole comparison (default 80, quick 30)")
    parser.add_argument("--quiet-wait", type=float, default=180.0, metavar="S",
                        help="before each benchmark, wait up to S s for the box to be quiet "
                        "(a shared machine; 0: do not wait)")
    parser.add_argument("--quiet-limit", type=float, default=25.0, metavar="PCT",
                        help="quiet = other processes below PCT %% of one core over 3 s (25)")
    parser.add_argument("--rev", default=None, metavar="REV",
                        help="measure the project as committed at REV (exported with git "
                        "archive to a temporary folder; the benchmarks as committed at HEAD), "
                        "not the working tree")
    args = parser.parse_args(argv)
    if args.max_minutes is None:
        args.max_minutes = 30.0 if args.quick else 80.0

    path, logs = benchproc.results_files("compare", None)
    stem = path.with_suffix("")
    rec = Recorder(path)
    steps = plan(args, stem)
    source = BENCH.parent
    scratch = contextlib.ExitStack()
    if args.rev:
        folder = Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix="sb-compare-")))
        args.rev, source = export_tree(args.rev, folder)
        print(f"measuring {args.rev} (exported to {source})", flush=True)
    rec.write("run", args=vars(args), plan=[[s, a, b] for s, a, b in steps],
              source=str(source))
    print(f"results: {path}", flush=True)
    readers: dict[str, Callable[[list[dict[str, Any]]], dict[str, dict[str, Any]]]] = {
        "s1": s1_figures,
        "s1-live": s1_figures,
        "s2": lambda lines: by_target(lines, "memory", s2_line),
        "s3": lambda lines: by_target(lines, "handshakes", s3_line),
        "hooks": lambda lines: by_target(lines, "result", hooks_line),
        "polling": s1_figures,
        "recovery": recovery_figures,
    }
    results: dict[str, dict[str, dict[str, Any]]] = {}
    status = 0
    try:
        with time_bound(args.max_minutes * 60):
            for scenario, step_argv, bound in steps:
                idle = benchproc.wait_quiet(args.quiet_limit, args.quiet_wait)
                code, output = run_benchmark(scenario, step_argv, logs, bound, source)
                if scenario == "recovery":
                    named = [line.split(None, 1)[1] for line in output.splitlines()
                             if line.startswith("results: ")]
                    out_path = Path(named[-1].strip()) if named else None
                else:
                    out_path = Path(step_argv[step_argv.index("--out") + 1])
                lines = read_lines(out_path) if out_path else []
                results[scenario] = readers[scenario](lines)
                rec.write("scenario", scenario=scenario, argv=step_argv, exit_code=code,
                          busy_before_pct=idle,
                          results_file=str(out_path) if out_path else None,
                          figures=results[scenario])
                status = status or (code != 0)
    except Overtime as exc:
        print(f"ABORTED: {exc}", file=sys.stderr, flush=True)
        rec.write("error", error=str(exc))
        status = 2
    finally:
        text = table(results)
        print("\n" + text)
        print("\nCPU: % of one core over the measured window (this box has 2 cores); serving = "
              "the target's own processes (gateways + nats-server [+ presence] / Node "
              "processes + redis / the raw server), not the load generator. (unconfirmed) = no "
              "rate held the confirm step: the best passing step of the sweep is shown.")
        rec.write("table", text=text)
        rec.close()
        scratch.close()  # the exported tree, if any
        print(f"results: {path}")
    return int(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
