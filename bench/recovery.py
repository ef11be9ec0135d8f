"""Recovery storm: how long 1,000 socket.io-client sockets take to recover after a SIGKILL.

nats-server (JetStream) and gateways A, B (, C...) run as children; a TCP proxy in this
process plays the load balancer. Every client (the unmodified socket.io-client, all in one
node process: ``bench/recovery/storm.mjs``) connects through the proxy, which points at A,
joins one of 10 rooms and receives one message (so it holds an offset). Then the proxy is
switched to the survivors, A is SIGKILLed (t0), a publisher connected straight to B keeps
sending one message per room every ``--publish-interval-ms`` while the clients reconnect,
and once every client is back one last round goes out. Every client must end up with every
message of its room exactly once.

    python bench/recovery.py [--clients 1000] [--gateways 2] [--runs 2]
    python bench/recovery.py --quick          # 100 clients

Reported per run: clients recovered (``socket.recovered``) vs fresh, time from the SIGKILL to
the first / median / p99 / last recovered client (node's ``performance.timeOrigin +
performance.now()`` against this process's ``time.time()``: one clock), messages lost and
duplicated, and the CPU of the survivors during the storm (t0 to the last reconnect). One JSON
line per run in bench/results/recovery-<time>.jsonl; the table goes to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import resource
import secrets
import signal
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from devcluster.tcpproxy import SwitchProxy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchproc import (
    Child,
    CpuSnapshot,
    NodeDriver,
    cpu_percent,
    free_port,
    mint_tokens,
    snapshot,
    versions,
    wait_http_ok,
)

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
STORM_DIR = BENCH / "recovery"
STORM_JS = STORM_DIR / "storm.mjs"
RESULTS = BENCH / "results"

NAMESPACE = "/chat"
ROOM_PREFIX = "room:rb-"
HIGH_CHAT_LIMIT = "1000000"  # the publisher's chat rate/burst: it is never the limit
SAMPLE_S = 0.25  # CPU timeline resolution during the storm (clock ticks are 10 ms)
# More than this much CPU (% of one core) taken by processes that are not ours during the
# storm: a neighbour on this shared box slowed the run down; the verdict says "noisy".
NOISE_LIMIT = 20.0


# -- the node process ---------------------------------------------------------------------------


class Storm(NodeDriver):
    """``storm.mjs``: commands as JSON lines on its stdin, events as JSON lines from stdout."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        super().__init__("storm", STORM_JS, config_path, log_path,
                         STORM_DIR / "node_modules" / "socket.io-client")

# -- one run ------------------------------------------------------------------------------------


def start_gateways(stack: contextlib.AsyncExitStack, nats_url: str, secret: str, count: int,
                   logs: Path, extra_env: dict[str, str], run: int) -> tuple[list[Child],
                                                                             list[int]]:
    children: list[Child] = []
    ports: list[int] = []
    for i in range(count):
        port = free_port()
        name = "gateway-" + "ABCDEFGHIJ"[i] if i < 10 else f"gateway-{i}"
        env = {
            **os.environ,
            "SB_HOST": "127.0.0.1",
            "SB_PORT": str(port),
            "SB_INSTANCE_ID": f"bench-rb-{run}-{i}",
            "SB_NATS_URL": nats_url,
            "SB_JWT_SECRET": secret,
            "SB_LOG_LEVEL": "WARNING",
            "SB_CHAT_RATE": HIGH_CHAT_LIMIT,
            "SB_CHAT_BURST": HIGH_CHAT_LIMIT,
            **extra_env,
        }
        child = Child(name, [sys.executable, "-m", "gateway"], logs / f"run{run}-{name}.log",
                      env=env, cwd=REPO)
        stack.callback(child.stop)
        children.append(child)
        ports.append(port)
    for child, port in zip(children, ports, strict=True):
        wait_http_ok(f"http://127.0.0.1:{port}/readyz", child, timeout=60)
    return children, ports




def recoveries_metric(port: int) -> dict[str, float]:
    """The gateway's own count of recovery attempts by result, from its /metrics."""
    found: dict[str, float] = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("switchboard_gateway_recoveries_total{"):
                labels, value = line.rsplit(" ", 1)
                result = labels.split('result="', 1)[1].split('"', 1)[0]
                found[result] = found.get(result, 0.0) + float(value)
            elif line.startswith("switchboard_gateway_replayed_messages_total{"):
                found["replayed"] = found.get("replayed", 0.0) + float(line.rsplit(" ", 1)[1])
    return found


def client_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if args.reconnection_delay is not None:
        options["reconnectionDelay"] = args.reconnection_delay
    if args.reconnection_delay_max is not None:
        options["reconnectionDelayMax"] = args.reconnection_delay_max
    if args.randomization_factor is not None:
        options["randomizationFactor"] = args.randomization_factor
    return options


def pct(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of unsorted values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.4999)))
    return ordered[rank - 1]


def spread(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "first": min(values) if values else None,
        "p50": pct(values, 50),
        "p99": pct(values, 99),
        "last": max(values) if values else None,
    }


async def publish_rounds(storm: Storm, first: int, interval_s: float,
                         stop: asyncio.Event) -> int:
    """One message per room every ``interval_s`` until ``stop``; returns the next round."""
    round_no = first
    while not stop.is_set():
        storm.send({"cmd": "publish", "round": round_no})
        round_no += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
    return round_no


async def sample_cpu(pids: dict[str, int], samples: list[CpuSnapshot],
                     stop: asyncio.Event) -> None:
    while not stop.is_set():
        samples.append(snapshot(pids))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_S)


def peak_cpu(samples: list[CpuSnapshot], name: str) -> float | None:
    """The busiest ~0.25 s interval of ``name`` (one core = 100); intervals under 0.2 s (the
    last one, or a late sample followed by a prompt one) are too coarse at 10 ms a tick."""
    peaks = [cpu_percent(a, b).get(name) for a, b in itertools.pairwise(samples)
             if b.at - a.at >= 0.2]
    values = [v for v in peaks if v is not None]
    return max(values) if values else None


async def run_once(args: argparse.Namespace, run: int, logs: Path) -> dict[str, Any]:
    from devcluster.natsserver import NatsServer

    secret = secrets.token_urlsafe(32)
    tag = f"{run}{secrets.token_hex(3)}"
    async with contextlib.AsyncExitStack() as stack:  # stopped in reverse: node first
        nats = NatsServer()
        await asyncio.to_thread(nats.start)
        stack.callback(nats.stop)
        extra = dict(kv.split("=", 1) for kv in args.gateway_env)
        gateways, ports = await asyncio.to_thread(
            start_gateways, stack, nats.url, secret, args.gateways, logs, extra, run)
        doomed, survivors = gateways[0], gateways[1:]
        proxy = await SwitchProxy([("127.0.0.1", ports[0])]).start()
        stack.push_async_callback(proxy.stop)
        tokens = logs / f"run{run}-tokens.txt"
        mint_tokens(tokens, secret, args.clients + 1, f"rb-{tag}")
        config = {
            "proxy_url": proxy.url,
            "publisher_url": f"http://127.0.0.1:{ports[1]}",
            "namespace": NAMESPACE,
            "clients": args.clients,
            "rooms": args.rooms,
            "room_prefix": ROOM_PREFIX,
            "tokens_file": str(tokens),
            "client_options": client_options(args),
            "connect_concurrency": args.connect_concurrency,
            "max_lifetime_s": int(args.max_minutes * 60) + 30,
            "run_tag": f"rb{tag}",
        }
        config_path = logs / f"run{run}-storm.json"
        config_path.write_text(json.dumps(config, indent=1))
        storm = Storm(config_path, logs / f"run{run}-storm.log")
        stack.callback(storm.stop)
        return await storm_once(args, run, storm, proxy, nats.pid, doomed, survivors, ports)


async def storm_once(args: argparse.Namespace, run: int, storm: Storm, proxy: SwitchProxy,
                     nats_pid: int, doomed: Child, survivors: list[Child],
                     ports: list[int]) -> dict[str, Any]:
    ready = await storm.expect("ready", within=180)
    skew_ms = time.time() * 1000 - ready["clock_ms"]
    print(f"[run {run}] {ready['clients']} clients connected through the proxy to "
          f"{doomed.name} and joined in {ready['setup_ms'] / 1000:.1f} s "
          f"(socket.io-client {ready['client_version']}, node {ready['node']})", flush=True)

    storm.send({"cmd": "publish", "round": 0})  # every client gets one event: an offset
    storm.send({"cmd": "await_delivery", "timeout_ms": 15_000})
    primed = await storm.expect("delivered", within=30)
    if not primed["complete"]:
        raise RuntimeError(f"priming round not delivered to every client: {primed}")
    storm.send({"cmd": "watch"})
    await storm.expect("watching", within=10)
    await asyncio.sleep(0.5)  # let the priming acks and joins settle

    pids = {s.name: s.pid for s in survivors}
    pids.update({"nats-server": nats_pid, "node": storm.child.pid, "runner+proxy": os.getpid()})
    survivor_addrs = [("127.0.0.1", port) for port in ports[1:]]
    before = snapshot(pids)
    samples = [before]
    if args.switch_after_ms <= 0:
        proxy.switch(survivor_addrs)
    t0 = time.time() * 1000
    os.kill(doomed.pid, signal.SIGKILL)
    await asyncio.to_thread(doomed.proc.wait, 5)
    storm.send({"cmd": "killed", "t0": t0})
    if args.switch_after_ms > 0:
        asyncio.get_running_loop().call_later(args.switch_after_ms / 1000, proxy.switch,
                                              survivor_addrs)

    stop_publishing, stop_sampling = asyncio.Event(), asyncio.Event()
    publisher = asyncio.create_task(
        publish_rounds(storm, 1, args.publish_interval_ms / 1000, stop_publishing))
    sampler = asyncio.create_task(sample_cpu(pids, samples, stop_sampling))
    reconnected: dict[int, dict[str, Any]] = {}
    counts = {"disconnect": 0, "attempt": 0, "connect_error": 0}
    killed_echo: dict[str, Any] = {}
    deadline = time.monotonic() + args.recovery_timeout
    try:
        while len(reconnected) < args.clients:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                event = await storm.next_event(remaining)
            except TimeoutError:
                break
            kind = event.get("event")
            if kind == "connect":
                reconnected[event["i"]] = event
            elif kind in counts:
                counts[kind] += 1
            elif kind == "killed":
                killed_echo = event
    finally:
        stop_publishing.set()
        stop_sampling.set()
        next_round = await publisher
        await sampler
    after = snapshot(pids)
    samples.append(after)
    storm.send({"cmd": "publish", "round": next_round})  # one round after everyone is back
    storm.send({"cmd": "await_delivery", "timeout_ms": 15_000})
    delivered = await storm.expect("delivered", within=40)
    storm.send({"cmd": "report"})
    report = await storm.expect("report", within=30)
    metrics = {s.name: await asyncio.to_thread(recoveries_metric, port)
               for s, port in zip(survivors, ports[1:], strict=True)}
    return summarize(args, run, t0, ready, skew_ms, killed_echo, counts, before, after,
                     samples, delivered, report, metrics, proxy, next_round + 1, survivors)


def summarize(args: argparse.Namespace, run: int, t0: float, ready: dict[str, Any],
              skew_ms: float, killed_echo: dict[str, Any], counts: dict[str, int],
              before: CpuSnapshot, after: CpuSnapshot, samples: list[CpuSnapshot],
              delivered: dict[str, Any], report: dict[str, Any],
              metrics: dict[str, dict[str, float]], proxy: SwitchProxy, rounds: int,
              survivors: list[Child]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = report["rows"]
    back = [r for r in rows if r["connect_t"] is not None]
    recovered = [r for r in back if r["recovered"]]
    fresh = [r for r in back if not r["recovered"]]

    def since_t0(key: str, subset: list[dict[str, Any]]) -> list[float]:
        return [r[key] - t0 for r in subset if r[key] is not None]

    waited = [r["attempt_t"] - r["disconnect_t"] for r in back
              if r["attempt_t"] is not None and r["disconnect_t"] is not None]
    handshake = [r["connect_t"] - r["attempt_t"] for r in back if r["attempt_t"] is not None]
    cpu = cpu_percent(before, after)
    result: dict[str, Any] = {
        "run": run,
        "clients": len(rows),
        "gateways": args.gateways,
        "client_options": ready["options"],
        "client_options_overridden": client_options(args),
        "socket_io_client": ready["client_version"],
        "recovered": len(recovered),
        "fresh": len(fresh),
        "not_reconnected": len(rows) - len(back),
        "recovered_ms": spread(since_t0("connect_t", recovered)),
        "reconnected_ms": spread(since_t0("connect_t", back)),
        "disconnect_noticed_ms": spread(since_t0("disconnect_t", rows)),
        "backoff_wait_ms": spread(waited),
        "attempt_to_connect_ms": spread(handshake),
        "attempts_max": max((r["attempts"] for r in rows), default=0),
        "connect_errors": sum(r["connect_errors"] for r in rows),
        "events": counts,
        "publish_rounds": rounds,
        "expected_per_room": report["expected"],
        "publish_errors": report["publish_errors"],
        "delivered": delivered,
        "lost": sum(r["lost"] for r in rows),
        "lost_by_recovered": sum(r["lost"] for r in recovered),
        "dup": sum(r["dup"] for r in rows),
        "stray": sum(r["stray"] for r in rows),
        "unexpected": sum(r["unexpected"] for r in rows),
        "out_of_order": sum(r["out_of_order"] for r in rows),
        "received": sum(r["received"] for r in rows),
        "storm_window_s": round(after.at - before.at, 3),
        "cpu": cpu,
        "cpu_peak_250ms": {name: peak_cpu(samples, name) for name in before.processes},
        "survivor_cpu_ms_per_reconnect": round(
            sum(cpu.get(s.name) or 0.0 for s in survivors) * (after.at - before.at) * 10
            / max(len(back), 1), 2),
        "timeline": timeline(samples, rows, t0, [s.name for s in survivors]),
        "gateway_metrics": metrics,
        "proxy": {"accepted": proxy.accepted, "refused": proxy.refused},
        "clock": {"ready_skew_ms": round(skew_ms, 1),
                  "kill_notice_ms": round(killed_echo["received_t"] - t0, 1)
                  if killed_echo else None},
        "survivors": [s.name for s in survivors],
    }
    result["passed"] = (result["recovered"] == result["clients"] and result["lost"] == 0
                        and result["dup"] == 0 and result["unexpected"] == 0
                        and result["stray"] == 0 and delivered["pending_acks"] == 0
                        and not result["publish_errors"])
    result["noisy"] = (cpu.get("unattributed") or 0.0) > NOISE_LIMIT
    return result


def timeline(samples: list[CpuSnapshot], rows: list[dict[str, Any]], t0: float,
             survivors: list[str]) -> list[dict[str, Any]]:
    """Per CPU-sample interval after the kill (~0.25 s): reconnect attempts started, clients
    recovered and each survivor's CPU. Sample times are offsets from the snapshot taken just
    before the SIGKILL (monotonic), client times from t0 (epoch): the same instant to < 1 ms."""
    origin = samples[0].at
    slots = []
    for a, b in itertools.pairwise(samples):
        if b.at - a.at < 0.05:
            continue
        lo, hi = (a.at - origin) * 1000, (b.at - origin) * 1000
        cpu = cpu_percent(a, b)

        def within(t: float | None, lo: float = lo, hi: float = hi) -> bool:
            return t is not None and lo <= t - t0 < hi

        slots.append({
            "from_ms": round(lo), "to_ms": round(hi),
            "attempts": sum(within(r["attempt_t"]) for r in rows),
            "recovered": sum(within(r["connect_t"]) and bool(r["recovered"]) for r in rows),
            "cpu": {name: cpu.get(name) for name in survivors},
        })
    return slots


# -- report -------------------------------------------------------------------------------------


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def table(results: list[dict[str, Any]]) -> str:
    survivor = results[0]["survivors"][0] if results else "gateway-B"
    head = (f"| run | clients | recovered | fresh | not back | SIGKILL → first / p50 / p99 / last "
            f"recovered (ms) | lost | dup | {survivor} CPU % (avg / peak 0.25 s) | nats % "
            "| node % | runner+proxy % | machine % | other % | verdict |")
    rows = [head, "|" + "---|" * 15]
    for r in results:
        t, cpu, peak = r["recovered_ms"], r["cpu"], r["cpu_peak_250ms"]
        rows.append(
            f"| {r['run']} | {r['clients']} | {r['recovered']} | {r['fresh']} "
            f"| {r['not_reconnected']} "
            f"| {ms(t['first'])} / {ms(t['p50'])} / {ms(t['p99'])} / **{ms(t['last'])}** "
            f"| {r['lost']} | {r['dup']} | {cpu.get(survivor)} / {peak.get(survivor)} "
            f"| {cpu.get('nats-server')} | {cpu.get('node')} | {cpu.get('runner+proxy')} "
            f"| {cpu['machine']} | {cpu['unattributed']} "
            f"| {'PASS' if r['passed'] else 'FAIL'}{' (noisy)' if r['noisy'] else ''} |"
        )
    return "\n".join(rows)


def detail(r: dict[str, Any]) -> str:
    b, a, d = r["backoff_wait_ms"], r["attempt_to_connect_ms"], r["disconnect_noticed_ms"]
    opts = r["client_options"]
    return "\n".join([
        f"  client reconnection settings in effect: delay {opts['reconnectionDelay']} ms, "
        f"max {opts['reconnectionDelayMax']} ms, randomization {opts['randomizationFactor']}"
        + (f" (overridden: {r['client_options_overridden']})"
           if r["client_options_overridden"] else " (socket.io-client defaults)"),
        f"  disconnect noticed (ms after SIGKILL): first {ms(d['first'])}, last {ms(d['last'])}",
        "  client backoff wait (disconnect → the attempt that connected, ms): "
        f"first {ms(b['first'])}, p50 {ms(b['p50'])}, last {ms(b['last'])}",
        f"  that attempt → connect (WebSocket via the proxy + CONNECT + recovery, ms): "
        f"p50 {ms(a['p50'])}, p99 {ms(a['p99'])}, max {ms(a['last'])}",
        f"  attempts (max per client) {r['attempts_max']}, connect errors {r['connect_errors']}, "
        f"proxy refused {r['proxy']['refused']}",
        f"  messages: {r['publish_rounds']} rounds x {len(r['expected_per_room'])} rooms, "
        f"{r['received']:,} distinct received, lost {r['lost']} "
        f"(of which by recovered clients {r['lost_by_recovered']}), dup {r['dup']}, "
        f"other-room {r['unexpected']}, un-acked {r['stray']}, "
        f"seq out of order {r['out_of_order']}",
        f"  gateway metrics (recoveries by result, replayed messages): {r['gateway_metrics']}",
        f"  storm window {r['storm_window_s']} s; CPU avg "
        + ", ".join(f"{k} {v}" for k, v in r["cpu"].items() if v is not None)
        + "; peak 0.25 s " + ", ".join(f"{k} {v}" for k, v in r["cpu_peak_250ms"].items()),
        f"  survivors' CPU per reconnect (all their work in the window / reconnects): "
        f"{r['survivor_cpu_ms_per_reconnect']} ms",
        "  timeline (ms after SIGKILL: attempts started / recovered / survivor CPU %): "
        + ", ".join(f"{s['from_ms']}-{s['to_ms']}: {s['attempts']}/{s['recovered']}/"
                    + "+".join(str(v) for v in s["cpu"].values()) for s in r["timeline"]),
        f"  clock check: node's clock read {r['clock']['ready_skew_ms']} ms behind time.time() "
        f"when its ready line arrived; the kill notice reached node "
        f"{r['clock']['kill_notice_ms']} ms after t0",
    ])




def ensure_fds(clients: int) -> int:
    """The runner holds two sockets per proxied client; raise the soft limit if it is short."""
    need = 2 * clients + 200
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft != resource.RLIM_INFINITY and soft < need:
        raise RuntimeError(f"need {need} file descriptors, the limit is {soft}")
    return need


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Recovery storm after a gateway's SIGKILL.")
    parser.add_argument("--clients", type=int, default=None,
                        help="socket.io-client sockets (default 1000, --quick 100)")
    parser.add_argument("--quick", action="store_true", help="100 clients, one run")
    parser.add_argument("--gateways", type=int, default=2,
                        help="gateways (>= 2); the first is killed, the rest take the clients")
    parser.add_argument("--runs", type=int, default=1, help="repeat with fresh processes")
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--publish-interval-ms", type=float, default=250.0,
                        help="one message per room this often while clients reconnect")
    parser.add_argument("--recovery-timeout", type=float, default=60.0,
                        help="seconds after the kill to wait for every client")
    parser.add_argument("--switch-after-ms", type=float, default=0.0,
                        help="keep the proxy on the dead gateway this long (default: switch "
                             "before the kill)")
    parser.add_argument("--connect-concurrency", type=int, default=50,
                        help="client connects in flight during setup")
    parser.add_argument("--reconnection-delay", type=int, default=None,
                        help="socket.io-client reconnectionDelay (default: its own, 1000)")
    parser.add_argument("--reconnection-delay-max", type=int, default=None,
                        help="socket.io-client reconnectionDelayMax (default: its own, 5000)")
    parser.add_argument("--randomization-factor", type=float, default=None,
                        help="socket.io-client randomizationFactor (default: its own, 0.5)")
    parser.add_argument("--gateway-env", action="append", default=[], metavar="SB_X=VALUE",
                        help="extra environment for the gateways (repeatable)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="hard bound on the whole invocation (default 4 per run)")
    args = parser.parse_args(argv)
    if args.clients is None:
        args.clients = 100 if args.quick else 1000
    if args.gateways < 2:
        parser.error("--gateways must be at least 2 (one to kill, one to recover on)")
    if args.gateways > 10:
        parser.error("--gateways: at most 10")
    if args.clients < 1 or args.rooms < 1 or args.runs < 1:
        parser.error("--clients, --rooms and --runs must be positive")
    if args.max_minutes is None:
        args.max_minutes = 4.0 * args.runs
    return args


async def run_all(args: argparse.Namespace, logs: Path, out: IO[bytes]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for run in range(1, args.runs + 1):
        result = await run_once(args, run, logs)
        out.write(orjson.dumps({"type": "run", "at": time.time(), **result}) + b"\n")
        out.flush()
        results.append(result)
        print(table([result]).splitlines()[-1], flush=True)
        print(detail(result), flush=True)
    return results


async def main_async(args: argparse.Namespace, logs: Path, out: IO[bytes]) -> int:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    results: list[dict[str, Any]] = []
    status = 0
    bound = asyncio.timeout(args.max_minutes * 60)
    try:
        async with bound:
            results = await run_all(args, logs, out)
    except TimeoutError as exc:
        if bound.expired():
            print(f"ABORTED: the run exceeded its {args.max_minutes:g} min bound",
                  file=sys.stderr)
            status = 2
        else:
            print(f"FAILED: timed out waiting ({exc!r})", file=sys.stderr)
            status = 1
    except asyncio.CancelledError:
        print("ABORTED: signalled", file=sys.stderr)
        status = 130
    except (RuntimeError, OSError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        out.write(orjson.dumps({"type": "error", "at": time.time(), "error": str(exc)}) + b"\n")
        status = 1
    if results:
        print()
        print(table(results))
        if not all(r["passed"] for r in results):
            status = status or 1
    return status


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    need = ensure_fds(args.clients)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    logs = RESULTS / f"recovery-{stamp}-logs"
    logs.mkdir()
    path = RESULTS / f"recovery-{stamp}.jsonl"
    print(f"results: {path}\nlogs:    {logs}", flush=True)
    with path.open("ab") as out:
        out.write(orjson.dumps({"type": "setup", "at": time.time(), "args": vars(args),
                                "versions": versions(), "cpus": os.cpu_count(),
                                "runner_fds_needed": need}) + b"\n")
        try:
            import uvloop
        except ImportError:
            return asyncio.run(main_async(args, logs, out))
        return uvloop.run(main_async(args, logs, out))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
