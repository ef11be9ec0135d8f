"""Recovery storm: thousands of socket.io-client sockets recover after their gateway dies or
drains.

nats-server (JetStream) and gateways A, B (, C...) run as children; the load balancer is
``bench/balancer.py`` run as ``--lb-procs`` processes on one port (SO_REUSEPORT), pointing every
new connection at A. The clients (the unmodified socket.io-client, ``bench/recovery/storm.mjs``)
are spread over ``--client-procs`` node processes; each connects through the balancer, joins
one room (100 clients a room by default) and receives one message (so it holds an offset).
Then the balancer is told (SIGUSR1) to send new connections to the survivors, and A gets
SIGKILL (``kill``) or SIGTERM (``drain``: it closes its sockets with 1012 spread over
``SB_DRAIN_WINDOW_S``) at t0. A publisher (its own node process, connected straight to B) keeps
sending one message per room every ``--publish-interval-ms`` while the clients reconnect with
socket.io-client's default backoff; once every client is back one last round goes out. Every
client must end with every acked message of its room, once and in ``seq`` order.

    python bench/recovery.py [--clients 1000] [--mode kill|drain|both] [--runs 1]
    python bench/recovery.py --clients 10000 --client-procs 4 --lb-procs 4
    python bench/recovery.py --quick          # 200 clients, kill then drain

Reported per run: recovered (``socket.recovered``) vs fresh, the time from t0 to the first /
p50 / p90 / p99 / last recovered client (node's ``process.hrtime`` against this process's
``time.monotonic()``: one clock, CLOCK_MONOTONIC), recoveries/s (overall and the busiest
second), messages lost, duplicated and out of order, and the CPU of every process during the
storm (t0 to the last reconnect), with the survivor's and nats-server's CPU per recovery.
One JSON line per run in bench/results/recovery-<time>.jsonl; the tables go to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import resource
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchproc import (
    Child,
    CpuSnapshot,
    NodeDriver,
    cpu_percent,
    free_port,
    mint_tokens,
    scrape_metrics,
    snapshot,
    versions,
    wait_http_ok,
    wait_quiet,
)

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
STORM_DIR = BENCH / "recovery"
STORM_JS = STORM_DIR / "storm.mjs"
BALANCER = BENCH / "balancer.py"
RESULTS = BENCH / "results"

NAMESPACE = "/chat"
ROOM_PREFIX = "room:rb-"
CLIENTS_PER_ROOM = 100
HIGH_CHAT_LIMIT = "1000000"  # the publisher's chat rate/burst: it is never the limit
SAMPLE_S = 0.25  # CPU timeline resolution during the storm (clock ticks are 10 ms)
QUEUE_SAMPLE_S = 0.5  # accept-queue sampling (one `ss` run each)
POLL_S = 0.02  # how often the runner looks for reconnects during the storm
TARGET_LAST_MS = 10_000  # what users must get: every client back within 10 s ...
# drain: the last close comes at the end of SB_DRAIN_WINDOW_S, then the client's first retry
# (<= 1.5 s with socket.io-client's defaults) and its recovery
DRAIN_TARGET_EXTRA_MS = 2_000
CLIENTS_PER_PROC = 2_500  # default spread of clients over node and balancer processes
FD_SLACK = 300
# More than this much CPU (% of one core) taken by processes that are not ours during the
# storm: a neighbour on this shared box slowed the run down; the verdict says "noisy".
NOISE_LIMIT = 20.0


# -- the processes ------------------------------------------------------------------------------


class Storm(NodeDriver):
    """``storm.mjs``: commands as JSON lines on its stdin, events as JSON lines from stdout."""

    def __init__(self, name: str, config_path: Path, log_path: Path) -> None:
        super().__init__(name, STORM_JS, config_path, log_path,
                         STORM_DIR / "node_modules" / "socket.io-client")

    async def expect(self, kind: str, within: float) -> dict[str, Any]:
        try:
            return await super().expect(kind, within)
        except TimeoutError:
            raise RuntimeError(f"{self.child.name}: no {kind!r} event within {within:g} s\n"
                               + self.child.log_tail()) from None

    def pending(self) -> list[dict[str, Any]]:
        """The events already read, without waiting; a dead or failed process raises."""
        found = []
        while not self.events.empty():
            event = self.events.get_nowait()
            if event is None or event.get("event") == "fatal":
                detail = event["error"] if event else f"exited ({self.child.proc.poll()})"
                raise RuntimeError(f"{self.child.name}: {detail}\n{self.child.log_tail()}")
            found.append(event)
        return found


async def expect_all(storms: Sequence[Storm], kind: str, within: float) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(s.expect(kind, within) for s in storms)))


def send_all(storms: Sequence[Storm], command: dict[str, Any]) -> None:
    for storm in storms:
        storm.send(command)


def export_revision(rev: str, into: Path) -> Path:
    """``gateway/`` and ``shared/`` as committed in ``rev``, unpacked into ``into`` (so a run
    measures a commit while others edit the working tree)."""
    into.mkdir(parents=True, exist_ok=True)
    (into / "REVISION").write_text(rev + "\n")
    archive = subprocess.run(["git", "archive", "--format=tar", rev, "gateway", "shared"],
                             cwd=REPO, capture_output=True, check=True, timeout=60).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True, timeout=60)
    return into


def start_gateways(stack: contextlib.ExitStack, nats_url: str, secret: str, count: int,
                   logs: Path, extra_env: dict[str, str], run: int,
                   source: Path) -> tuple[list[Child], list[int]]:
    children: list[Child] = []
    ports: list[int] = []
    for i in range(count):
        port = free_port()
        name = "gateway-" + "ABCDEFGHIJ"[i]
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
        if source != REPO:
            env["PYTHONPATH"] = str(source)
        child = Child(name, [sys.executable, "-m", "gateway"], logs / f"run{run}-{name}.log",
                      env=env, cwd=source)
        stack.callback(child.stop)
        children.append(child)
        ports.append(port)
    for child, port in zip(children, ports, strict=True):
        wait_http_ok(f"http://127.0.0.1:{port}/readyz", child, timeout=60)
    return children, ports


def start_balancers(stack: contextlib.ExitStack, procs: int, ports: list[int], logs: Path,
                    run: int, max_seconds: float) -> tuple[list[Child], int]:
    """``procs`` balancer processes on one port, all pointing new connections at ``ports[0]``
    (then, after SIGUSR1, round-robin at the rest)."""
    port = free_port()
    upstreams = ",".join(f"127.0.0.1:{p}" for p in ports)
    children = []
    for i in range(procs):
        child = Child(f"lb-{i}", [sys.executable, str(BALANCER), "--port", str(port),
                                  "--upstreams", upstreams, "--active", "1",
                                  "--max-seconds", str(int(max_seconds))],
                      logs / f"run{run}-lb-{i}.log", cwd=REPO)
        stack.callback(child.stop)
        children.append(child)
    deadline = time.monotonic() + 30
    for child in children:
        while f"READY {port}" not in child.log_tail(5):
            if not child.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} did not start:\n{child.log_tail()}")
            time.sleep(0.05)
    return children, port


def renice(pid: int, niceness: int) -> None:
    """Every thread of ``pid`` (Linux nices threads, not processes); threads it starts later
    inherit it from theirs."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, int(task.name), niceness)


def balancer_stats(children: Sequence[Child]) -> list[dict[str, Any]]:
    """The counters each balancer printed at exit (call after stopping them)."""
    found = []
    for child in children:
        with contextlib.suppress(OSError):
            for line in child.log_path.read_text(errors="replace").splitlines():
                if line.startswith('{"event": "stats"'):
                    found.append(json.loads(line))
    return found


def recoveries_metric(port: int) -> dict[str, float]:
    """The gateway's own count of recovery attempts by result, from its /metrics."""
    found: dict[str, float] = {}
    for key, value in scrape_metrics(f"http://127.0.0.1:{port}", "switchboard_gateway_").items():
        if key.startswith("switchboard_gateway_recoveries_total{"):
            result = key.split('result="', 1)[1].split('"', 1)[0]
            found[result] = found.get(result, 0.0) + value
        elif key.startswith(("switchboard_gateway_replayed_messages_total",
                             "switchboard_gateway_closes_total",
                             "switchboard_gateway_handshakes_total",
                             "switchboard_gateway_admissions_total")):
            name = key.removeprefix("switchboard_gateway_").replace("_total", "")
            found[name] = found.get(name, 0.0) + value
    return found


def gateway_revision(rev: str | None) -> dict[str, Any]:
    """The commit the gateway code was measured at: ``rev`` as exported, or the working tree
    with whether gateway/ or shared/ had uncommitted changes then (others may be editing)."""
    def git(*argv: str) -> str:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            return subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        return ""
    commit = git("log", "-1", "--format=%h", rev or "HEAD")
    return {"commit": commit, "source": "exported" if rev else "working tree",
            "gateway_commit": git("log", "-1", "--format=%h", commit, "--", "gateway",
                                  "shared"),
            "dirty": False if rev else bool(git("status", "--porcelain", "--", "gateway",
                                                "shared"))}


def client_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if args.reconnection_delay is not None:
        options["reconnectionDelay"] = args.reconnection_delay
    if args.reconnection_delay_max is not None:
        options["reconnectionDelayMax"] = args.reconnection_delay_max
    if args.randomization_factor is not None:
        options["randomizationFactor"] = args.randomization_factor
    return options


def shares(total: int, parts: int) -> list[tuple[int, int]]:
    """``total`` split into ``parts`` contiguous (first, count) ranges, as even as can be."""
    base, extra = divmod(total, parts)
    ranges, first = [], 0
    for k in range(parts):
        count = base + (1 if k < extra else 0)
        ranges.append((first, count))
        first += count
    return ranges


def all_ticks() -> dict[int, tuple[str, int]]:
    """(command name, utime + stime) of every process on the box (a child that lived and died
    inside the window is not seen: that is the rest of "other %")."""
    found = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                raw = Path(entry.path, "stat").read_text()
                fields = raw[raw.rindex(")") + 2:].split()
                found[int(entry.name)] = (raw[raw.index("(") + 1:raw.rindex(")")],
                                          int(fields[11]) + int(fields[12]))
    return found


TCP_COUNTERS = ("ListenOverflows", "ListenDrops", "TCPSynRetrans", "TCPTimeouts",
                "TCPAbortOnData", "TCPAbortOnClose")


def tcp_counters() -> dict[str, int]:
    """The box's TcpExt counters that show a full accept queue (SYNs dropped, then
    retransmitted after 1 s, 3 s, 7 s...) and aborted connections (/proc/net/netstat)."""
    found: dict[str, int] = {}
    with contextlib.suppress(OSError):
        lines = Path("/proc/net/netstat").read_text().splitlines()
        for names, values in itertools.pairwise(lines):
            if names.startswith("TcpExt:") and values.startswith("TcpExt:"):
                for name, value in zip(names.split()[1:], values.split()[1:], strict=True):
                    if name in TCP_COUNTERS:
                        found[name] = int(value)
    return found


def listen_queues() -> dict[int, int]:
    """The accept-queue length of every listening TCP socket on 127.0.0.1, by port (``ss``;
    the kernel drops a SYN that arrives while its socket's queue is full)."""
    found: dict[int, int] = {}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        text = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True,
                              timeout=5).stdout
        for line in text.splitlines():
            fields = line.split()
            if len(fields) >= 4 and fields[3].startswith("127.0.0.1:"):
                port = int(fields[3].rsplit(":", 1)[1])
                found[port] = found.get(port, 0) + int(fields[1])  # reuseport: summed
    return found


async def sample_queues(ports: dict[int, str], peaks: dict[str, int],
                        stop: asyncio.Event) -> None:
    """The longest accept queue seen on each of ``ports`` while the storm lasts."""
    while not stop.is_set():
        queues = await asyncio.to_thread(listen_queues)
        for port, name in ports.items():
            peaks[name] = max(peaks.get(name, 0), queues.get(port, 0))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), QUEUE_SAMPLE_S)


def busiest_others(before: dict[int, tuple[str, int]], after: dict[int, tuple[str, int]],
                   ours: set[int], seconds: float) -> list[str]:
    """The processes outside the benchmark that used the most CPU between two readings (a
    noisy neighbour's name), as "name pid %" (one core = 100)."""
    used = []
    for pid, (name, ticks) in after.items():
        if pid in ours:
            continue
        start = before.get(pid, (name, 0))[1]  # a process born meanwhile counts from 0
        used.append((ticks - start, name, pid))
    used.sort(reverse=True)
    tck = os.sysconf("SC_CLK_TCK")
    return [f"{name} {pid} {100 * t / tck / max(seconds, 1e-9):.0f}%"
            for t, name, pid in used[:4] if t > 0]


# -- statistics ---------------------------------------------------------------------------------


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
        "p90": pct(values, 90),
        "p99": pct(values, 99),
        "last": max(values) if values else None,
    }


def busiest_second(times_ms: Sequence[float]) -> int:
    """The most events inside any 1,000 ms window."""
    ordered = sorted(times_ms)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while t - ordered[lo] >= 1000:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def publish_rounds(publisher: Storm, first: int, interval_s: float,
                         stop: asyncio.Event) -> int:
    """One message per room every ``interval_s`` until ``stop``; returns the next round."""
    round_no = first
    while not stop.is_set():
        publisher.send({"cmd": "publish", "round": round_no})
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


def grouped(cpu: dict[str, float | None], prefix: str) -> float:
    return round(sum(v or 0.0 for k, v in cpu.items() if k.startswith(prefix)), 1)


# -- one run ------------------------------------------------------------------------------------


async def run_once(args: argparse.Namespace, run: int, mode: str,
                   logs: Path) -> dict[str, Any]:
    from devcluster.natsserver import NatsServer

    secret = secrets.token_urlsafe(32)
    tag = f"{run}{secrets.token_hex(3)}"
    with contextlib.ExitStack() as stack:  # stopped in reverse: node first, nats last
        nats = NatsServer()
        await asyncio.to_thread(nats.start)
        stack.callback(nats.stop)
        extra = dict(kv.split("=", 1) for kv in args.gateway_env)
        if args.drain_window_s is not None:
            extra["SB_DRAIN_WINDOW_S"] = str(args.drain_window_s)
        gateways, ports = await asyncio.to_thread(
            start_gateways, stack, nats.url, secret, args.gateways, logs, extra, run,
            args.gateway_source)
        balancers, lb_port = await asyncio.to_thread(
            start_balancers, stack, args.lb_procs, ports, logs, run, args.max_minutes * 60)
        publisher_sockets = math.ceil(args.rooms / 10)
        tokens = logs / f"run{run}-tokens.txt"
        await asyncio.to_thread(mint_tokens, tokens, secret, args.clients + publisher_sockets,
                                f"rb-{tag}")
        base = {
            "namespace": NAMESPACE,
            "rooms": args.rooms,
            "room_prefix": ROOM_PREFIX,
            "tokens_file": str(tokens),
            "max_lifetime_s": int(args.max_minutes * 60) + 30,
            "run_tag": f"rb{tag}",
        }

        def storm(name: str, config: dict[str, Any]) -> Storm:
            path = logs / f"run{run}-{name}.json"
            path.write_text(json.dumps({**base, **config}, indent=1))
            driver = Storm(name, path, logs / f"run{run}-{name}.log")
            stack.callback(driver.stop)
            return driver

        publisher = storm("publisher", {"role": "publisher", "url": f"http://127.0.0.1:"
                                        f"{ports[1]}", "first": args.clients})
        await publisher.expect("ready", within=60)
        per_proc = max(1, args.connect_concurrency // args.client_procs)
        clients = [storm(f"node-{k}", {
            "role": "clients", "url": f"http://127.0.0.1:{lb_port}", "first": first,
            "count": count, "client_options": client_options(args),
            "connect_concurrency": per_proc, "connect_timeout_s": args.setup_timeout,
        }) for k, (first, count) in enumerate(shares(args.clients, args.client_procs))]
        for pid in [publisher.child.pid, *(c.child.pid for c in clients),
                    *(b.pid for b in balancers)]:
            renice(pid, args.nice)
        result = await storm_once(args, run, mode, publisher, clients, nats.pid, gateways,
                                  ports, balancers, lb_port)
        for child in balancers:
            child.stop()
        result["balancers"] = balancer_stats(balancers)
        return result


async def storm_once(args: argparse.Namespace, run: int, mode: str, publisher: Storm,
                     clients: list[Storm], nats_pid: int, gateways: list[Child],
                     ports: list[int], balancers: list[Child],
                     lb_port: int) -> dict[str, Any]:
    doomed, survivors = gateways[0], gateways[1:]
    setup_start = time.monotonic()
    readies = await expect_all(clients, "ready", within=args.setup_timeout + 30)
    ready = readies[0]
    skew_ms = time.monotonic() * 1000 - ready["clock_ms"]
    print(f"[run {run} {mode}] {sum(r['clients'] for r in readies):,} clients in "
          f"{len(clients)} node processes connected through {len(balancers)} balancer "
          f"processes to {doomed.name} and joined in {time.monotonic() - setup_start:.1f} s "
          f"(socket.io-client {ready['client_version']}, node {ready['node']})", flush=True)

    async def publish_and_deliver(round_no: int, within_ms: int) -> tuple[dict[str, Any],
                                                                            list[dict[str, Any]]]:
        publisher.send({"cmd": "publish", "round": round_no})
        publisher.send({"cmd": "flush", "timeout_ms": within_ms})
        flushed = await publisher.expect("flushed", within=within_ms / 1000 + 10)
        send_all(clients, {"cmd": "expect", "expected": flushed["expected"],
                           "timeout_ms": within_ms})
        return flushed, await expect_all(clients, "delivered", within=within_ms / 1000 + 20)

    _, primed = await publish_and_deliver(0, 30_000)  # every client gets one event: an offset
    if not all(d["complete"] for d in primed):
        raise RuntimeError(f"priming round not delivered to every client: {primed}")
    send_all(clients, {"cmd": "watch"})
    await expect_all(clients, "watching", within=10)
    await asyncio.sleep(0.5)  # let the priming acks settle

    pids = {s.name: s.pid for s in survivors}
    pids["nats-server"] = nats_pid
    pids.update({c.child.name: c.child.pid for c in clients})
    pids["publisher"] = publisher.child.pid
    pids.update({b.name: b.pid for b in balancers})
    pids["runner"] = os.getpid()
    if mode == "drain":
        pids[doomed.name] = doomed.pid  # it works through its drain while the storm lasts
    others_before, tcp_before = all_ticks(), tcp_counters()
    before = snapshot(pids)
    samples = [before]
    if mode == "drain" or args.lb_switch == "signal":
        for balancer in balancers:  # a health check that marks A down
            os.kill(balancer.pid, signal.SIGUSR1)
    t0 = time.monotonic() * 1000
    os.kill(doomed.pid, signal.SIGKILL if mode == "kill" else signal.SIGTERM)
    if mode == "kill":
        await asyncio.to_thread(doomed.proc.wait, 5)
    send_all(clients, {"cmd": "killed", "t0": t0})

    stop_publishing, stop_sampling = asyncio.Event(), asyncio.Event()
    pub_task = asyncio.create_task(
        publish_rounds(publisher, 1, args.publish_interval_ms / 1000, stop_publishing))
    sampler = asyncio.create_task(sample_cpu(pids, samples, stop_sampling))
    queue_peaks: dict[str, int] = {}
    queue_ports = {port: gateway.name for gateway, port in zip(gateways, ports, strict=True)}
    queue_ports[lb_port] = "balancer"
    queues = asyncio.create_task(sample_queues(queue_ports, queue_peaks, stop_sampling))
    reconnected: dict[int, dict[str, Any]] = {}
    killed_echo: list[dict[str, Any]] = []
    deadline = time.monotonic() + args.recovery_timeout
    try:
        while len(reconnected) < args.clients and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
            for driver in clients:
                for event in driver.pending():
                    if event.get("event") == "connect":
                        reconnected.setdefault(event["i"], event)
                    elif event.get("event") == "killed":
                        killed_echo.append(event)
    finally:
        after = snapshot(pids)
        others = busiest_others(others_before, all_ticks(), {*pids.values(), doomed.pid},
                                after.at - before.at)
        tcp = {k: v - tcp_before.get(k, 0) for k, v in tcp_counters().items()}
        stop_publishing.set()
        stop_sampling.set()
        next_round = await pub_task
        await sampler
        await queues
    samples.append(after)
    flushed, delivered = await publish_and_deliver(next_round, 20_000)  # everyone is back
    send_all(clients, {"cmd": "report"})
    reports = await expect_all(clients, "report", within=30)
    publisher.send({"cmd": "report"})
    published = await publisher.expect("report", within=10)
    metrics: dict[str, dict[str, float] | str] = {}
    for gateway, port in zip(survivors, ports[1:], strict=True):
        try:
            metrics[gateway.name] = await asyncio.to_thread(recoveries_metric, port)
        except OSError as exc:  # an overloaded survivor may not answer in time
            metrics[gateway.name] = f"/metrics failed: {exc}"
    if mode == "drain":  # it exits by itself once drained
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(doomed.proc.wait, 30)
    doomed_rc = doomed.proc.poll()
    rows = [row for report in reports for row in report["rows"]]
    result = summarize(args, run, mode, t0, ready, skew_ms, killed_echo, before, after,
                       samples, flushed, delivered, published, rows, metrics, next_round + 1,
                       survivors, doomed_rc)
    result["busiest_others"] = others
    result["tcp_counters"] = tcp
    result["accept_queue_peaks"] = queue_peaks
    return result


def summarize(args: argparse.Namespace, run: int, mode: str, t0: float,
              ready: dict[str, Any], skew_ms: float, killed_echo: list[dict[str, Any]],
              before: CpuSnapshot, after: CpuSnapshot, samples: list[CpuSnapshot],
              flushed: dict[str, Any], delivered: list[dict[str, Any]],
              published: dict[str, Any], rows: list[dict[str, Any]],
              metrics: dict[str, dict[str, float] | str], rounds: int, survivors: list[Child],
              doomed_rc: int | None) -> dict[str, Any]:
    back = [r for r in rows if r["connect_t"] is not None]
    recovered = [r for r in back if r["recovered"]]
    fresh = [r for r in back if not r["recovered"]]

    def since_t0(key: str, subset: list[dict[str, Any]]) -> list[float]:
        return [r[key] - t0 for r in subset if r[key] is not None]

    recovered_ms = since_t0("connect_t", recovered)
    waited = [r["attempt_t"] - r["disconnect_t"] for r in back
              if r["attempt_t"] is not None and r["disconnect_t"] is not None]
    handshake = [r["connect_t"] - r["attempt_t"] for r in back if r["attempt_t"] is not None]
    window_s = after.at - before.at
    cpu = cpu_percent(before, after)
    survivor = survivors[0].name

    def cpu_ms_per_recovery(names: Sequence[str]) -> float | None:
        if not recovered:
            return None
        return round(sum(cpu.get(n) or 0.0 for n in names) * window_s * 10 / len(recovered), 3)

    spread_ms = spread(recovered_ms)
    span_s = ((spread_ms["last"] or 0.0) - (spread_ms["first"] or 0.0)) / 1000
    result: dict[str, Any] = {
        "run": run,
        "mode": mode,
        "clients": len(rows),
        "client_procs": args.client_procs,
        "lb_procs": args.lb_procs,
        "nice": args.nice,
        "rooms": args.rooms,
        "gateways": args.gateways,
        "drain_window_s": args.drain_window_s,
        "doomed_exit": doomed_rc,
        "client_options": ready["options"],
        "client_options_overridden": client_options(args),
        "socket_io_client": ready["client_version"],
        "recovered": len(recovered),
        "fresh": len(fresh),
        "not_reconnected": len(rows) - len(back),
        "recovered_ms": spread_ms,
        "reconnected_ms": spread(since_t0("connect_t", back)),
        "disconnect_noticed_ms": spread(since_t0("disconnect_t", rows)),
        "backoff_wait_ms": spread(waited),
        "attempt_to_connect_ms": spread(handshake),
        "recoveries_per_s": round(len(recovered) / span_s) if span_s > 0 else None,
        "recoveries_busiest_1s": busiest_second(recovered_ms),
        "attempts_max": max((r["attempts"] for r in rows), default=0),
        "retried": sum(r["attempts"] > 1 for r in rows),
        "connect_errors": sum(r["connect_errors"] for r in rows),
        "disconnect_reasons": count_by(rows, "reason"),
        "last_connect_errors": count_by([r for r in rows if r["error"]], "error"),
        "publish_rounds": rounds,
        "expected": sum(len(ids) for ids in flushed["expected"].values()),
        "publish_errors": published["publish_errors"],
        "pending_acks": flushed["pending_acks"],
        "delivered_complete": all(d["complete"] for d in delivered),
        "lost": sum(r["lost"] for r in rows),
        "lost_by_recovered": sum(r["lost"] for r in recovered),
        "dup": sum(r["dup"] for r in rows),
        "stray": sum(r["stray"] for r in rows),
        "unexpected": sum(r["unexpected"] for r in rows),
        "out_of_order": sum(r["out_of_order"] for r in rows),
        "prev_breaks": sum(r["prev_breaks"] for r in rows),
        "received": sum(r["received"] for r in rows),
        "storm_window_s": round(window_s, 3),
        "cpu": cpu,
        "cpu_peak_250ms": {name: peak_cpu(samples, name) for name in before.processes},
        "cpu_ms_per_recovery": {
            survivor: cpu_ms_per_recovery([survivor]),
            "nats-server": cpu_ms_per_recovery(["nats-server"]),
            "survivor+nats": cpu_ms_per_recovery([survivor, "nats-server"]),
            "all survivors+nats": cpu_ms_per_recovery([s.name for s in survivors]
                                                      + ["nats-server"]),
        },
        "timeline": timeline(samples, rows, t0, [s.name for s in survivors]),
        "gateway_metrics": metrics,
        "clock": {"ready_skew_ms": round(skew_ms, 1),
                  "kill_notice_ms": [round(e["received_t"] - t0, 1) for e in killed_echo]},
        "survivors": [s.name for s in survivors],
    }
    result["passed"] = (result["recovered"] == result["clients"] and result["lost"] == 0
                        and result["dup"] == 0 and result["unexpected"] == 0
                        and result["stray"] == 0 and result["out_of_order"] == 0
                        and result["prev_breaks"] == 0 and result["pending_acks"] == 0
                        and result["delivered_complete"] and not result["publish_errors"])
    last = spread_ms["last"]
    # a drain closes its last socket at the end of its window: the bound moves with it
    bound = TARGET_LAST_MS if mode == "kill" else (
        1000 * (args.drain_window_s if args.drain_window_s is not None else 10.0)
        + DRAIN_TARGET_EXTRA_MS)
    result["target_ms"] = bound
    result["target_met"] = result["passed"] and last is not None and last <= bound
    result["noisy"] = (cpu.get("unattributed") or 0.0) > NOISE_LIMIT
    return result


def count_by(rows: list[dict[str, Any]], key: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for r in rows:
        found[str(r[key])] = found.get(str(r[key]), 0) + 1
    return found


def timeline(samples: list[CpuSnapshot], rows: list[dict[str, Any]], t0: float,
             survivors: list[str]) -> list[dict[str, Any]]:
    """Per second after t0: reconnect attempts started, clients recovered, and each
    survivor's and nats-server's CPU (from the ~0.25 s samples that start in that second).
    Sample times are offsets from the snapshot taken just before t0 (monotonic), client times
    from t0 (epoch): the same instant to < 1 ms."""
    origin = samples[0].at
    names = [*survivors, "nats-server", "node", "lb", "machine"]
    slots: dict[int, dict[str, Any]] = {}

    def slot(second: int) -> dict[str, Any]:
        return slots.setdefault(second, {"s": second, "attempts": 0, "recovered": 0,
                                         "cpu": {}, "_samples": []})

    for r in rows:
        if r["attempt_t"] is not None:
            slot(int((r["attempt_t"] - t0) // 1000))["attempts"] += 1
        if r["connect_t"] is not None and r["recovered"]:
            slot(int((r["connect_t"] - t0) // 1000))["recovered"] += 1
    for a, b in itertools.pairwise(samples):
        slot(int((a.at - origin) // 1))["_samples"].append((a, b))
    for entry in slots.values():
        pairs = entry.pop("_samples")
        if pairs:
            cpu = cpu_percent(pairs[0][0], pairs[-1][1])
            cpu["node"], cpu["lb"] = grouped(cpu, "node-"), grouped(cpu, "lb-")
            entry["cpu"] = {name: cpu.get(name) for name in names}
    return [slots[k] for k in sorted(slots)]


# -- report -------------------------------------------------------------------------------------


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def table(results: list[dict[str, Any]]) -> str:
    survivor = results[0]["survivors"][0] if results else "gateway-B"
    head = (f"| run | mode | clients (node x lb procs) | recovered | fresh | not back "
            f"| t0 → first / p50 / p90 / p99 / last recovered (ms) | recoveries/s avg / "
            f"busiest 1 s | lost | dup | out of order | {survivor} + nats CPU ms per recovery "
            f"| {survivor} CPU % avg / peak | nats % | node % | lb % | machine % | other % "
            "| verdict |")
    rows = [head, "|" + "---|" * 19]
    for r in results:
        t, cpu, peak = r["recovered_ms"], r["cpu"], r["cpu_peak_250ms"]
        per = r["cpu_ms_per_recovery"]
        verdict = "PASS" if r["passed"] else "FAIL"
        verdict += (", all back within " if r["target_met"] else ", NOT all back within ") + \
            f"{r['target_ms'] / 1000:g} s"
        rows.append(
            f"| {r['run']} | {r['mode']} | {r['clients']:,} ({r['client_procs']} x "
            f"{r['lb_procs']}) | {r['recovered']:,} | {r['fresh']} | {r['not_reconnected']} "
            f"| {ms(t['first'])} / {ms(t['p50'])} / {ms(t['p90'])} / {ms(t['p99'])} / "
            f"**{ms(t['last'])}** | {r['recoveries_per_s'] or '-'} / "
            f"{r['recoveries_busiest_1s']} | {r['lost']} | {r['dup']} "
            f"| {r['out_of_order'] + r['prev_breaks']} "
            f"| {per[survivor]} + {per['nats-server']} = **{per['survivor+nats']}** "
            f"| {cpu.get(survivor)} / {peak.get(survivor)} | {cpu.get('nats-server')} "
            f"| {grouped(cpu, 'node-')} | {grouped(cpu, 'lb-')} "
            f"| {cpu['machine']} | {cpu['unattributed']} "
            f"| {verdict}{' (noisy)' if r['noisy'] else ''} |"
        )
    return "\n".join(rows)


def detail(r: dict[str, Any]) -> str:
    b, a, d = r["backoff_wait_ms"], r["attempt_to_connect_ms"], r["disconnect_noticed_ms"]
    opts = r["client_options"]
    lbs = r.get("balancers", [])
    return "\n".join([
        f"  client reconnection settings in effect: delay {opts['reconnectionDelay']} ms, "
        f"max {opts['reconnectionDelayMax']} ms, randomization {opts['randomizationFactor']}"
        + (f" (overridden: {r['client_options_overridden']})"
           if r["client_options_overridden"] else " (socket.io-client defaults)"),
        f"  disconnect noticed (ms after t0): first {ms(d['first'])}, p50 {ms(d['p50'])}, "
        f"last {ms(d['last'])}; reasons {r['disconnect_reasons']}; gateway A exited with "
        f"{r['doomed_exit']}",
        "  client backoff wait (disconnect → the attempt that connected, ms): "
        f"first {ms(b['first'])}, p50 {ms(b['p50'])}, last {ms(b['last'])}",
        f"  that attempt → connect (TCP via the balancer, WebSocket, CONNECT, recovery, "
        f"replay; ms): p50 {ms(a['p50'])}, p90 {ms(a['p90'])}, p99 {ms(a['p99'])}, "
        f"max {ms(a['last'])}",
        f"  attempts (max per client) {r['attempts_max']}, clients that retried "
        f"{r['retried']}, connect errors {r['connect_errors']} (each client's last: "
        f"{r['last_connect_errors']})",
        f"  messages: {r['publish_rounds']} rounds x {r['rooms']} rooms, {r['expected']:,} "
        f"acked, {r['received']:,} distinct received, lost {r['lost']} (of which by recovered "
        f"clients {r['lost_by_recovered']}), dup {r['dup']}, other-room {r['unexpected']}, "
        f"un-acked {r['stray']}, seq out of order {r['out_of_order']}, prev-chain breaks "
        f"{r['prev_breaks']}",
        f"  gateway metrics: {r['gateway_metrics']}",
        "  balancers (accepted / refused upstream connects / relayed per upstream): "
        + ", ".join(f"{s['accepted']}/{s['refused']}/{s['relayed']}" for s in lbs),
        f"  TCP counters of the box over the window (a full accept queue drops SYNs): "
        f"{r.get('tcp_counters')}; longest accept queue seen: {r.get('accept_queue_peaks')}",
        f"  busiest processes outside the benchmark in the window: "
        f"{', '.join(r.get('busiest_others', [])) or 'none'}",
        f"  storm window {r['storm_window_s']} s; CPU avg "
        + ", ".join(f"{k} {v}" for k, v in r["cpu"].items() if v is not None),
        "  CPU ms per recovery: " + ", ".join(f"{k} {v}"
                                              for k, v in r["cpu_ms_per_recovery"].items()),
        "  timeline (second after t0: attempts started / recovered / CPU % of the survivor + nats "
        "+ node + lb, machine): "
        + ", ".join(f"{s['s']}: {s['attempts']}/{s['recovered']}/"
                    + "+".join(str(v) for k, v in s["cpu"].items() if k != "machine")
                    + f" of {s['cpu'].get('machine')}" for s in r["timeline"]
                    if s["attempts"] or s["recovered"]),
        f"  clock check: node's clock read {r['clock']['ready_skew_ms']} ms behind "
        f"time.monotonic() when its ready line arrived; the t0 notice reached the node processes "
        f"{r['clock']['kill_notice_ms']} ms after t0",
    ])


# -- main ---------------------------------------------------------------------------------------


def raise_fd_limit(args: argparse.Namespace) -> dict[str, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit (children inherit it) and check that
    every process fits: a balancer holds 2 descriptors per client, a node process 1, the
    survivor gateway 1 per client once they are all back."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    limit = hard if hard != resource.RLIM_INFINITY else 1 << 20
    need = {
        "balancer": math.ceil(2 * 1.1 * args.clients / args.lb_procs) + FD_SLACK,
        "node": math.ceil(args.clients / args.client_procs) + FD_SLACK,
        "gateway": args.clients + FD_SLACK,
        "limit": limit,
    }
    for what in ("balancer", "node", "gateway"):
        if need[what] > limit:
            raise SystemExit(f"a {what} process would need {need[what]} descriptors, the "
                             f"limit is {limit}: raise --lb-procs / --client-procs or lower "
                             "--clients")
    return need


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Recovery storm after a gateway's SIGKILL or drain, through a balancer.")
    parser.add_argument("--clients", type=int, default=None,
                        help="socket.io-client sockets (default 1000, --quick 200)")
    parser.add_argument("--mode", choices=("kill", "drain", "both"), default=None,
                        help="SIGKILL the loaded gateway, SIGTERM it (drain), or one run of "
                             "each (default kill, --quick both)")
    parser.add_argument("--client-procs", type=int, default=None,
                        help=f"node processes holding the clients (default one per "
                             f"{CLIENTS_PER_PROC:,})")
    parser.add_argument("--lb-procs", type=int, default=None,
                        help=f"balancer processes on the one port (default one per "
                             f"{CLIENTS_PER_PROC:,}, at least 2)")
    parser.add_argument("--quick", action="store_true", help="200 clients, kill then drain")
    parser.add_argument("--gateways", type=int, default=2,
                        help="gateways (>= 2); the first is killed, the rest take the clients")
    parser.add_argument("--runs", type=int, default=1, help="repeat with fresh processes")
    parser.add_argument("--rooms", type=int, default=None,
                        help=f"rooms (default one per {CLIENTS_PER_ROOM} clients, at least 10)")
    parser.add_argument("--publish-interval-ms", type=float, default=500.0,
                        help="one message per room this often while clients reconnect")
    parser.add_argument("--recovery-timeout", type=float, default=None,
                        help="seconds after t0 to wait for every client (default 60, or the "
                             "drain window + 60)")
    parser.add_argument("--lb-switch", choices=("signal", "refuse"), default="signal",
                        help="kill mode: tell the balancer at t0 (a health check), or let it "
                             "find A refusing connects and try the next upstream (drain "
                             "always signals: a draining gateway still accepts TCP)")
    parser.add_argument("--drain-window-s", type=float, default=None,
                        help="SB_DRAIN_WINDOW_S for the gateways (default: the gateway's, 10)")
    parser.add_argument("--connect-concurrency", type=int, default=100,
                        help="client connects in flight during setup, over all node processes")
    parser.add_argument("--setup-timeout", type=float, default=None,
                        help="seconds for every client to connect and join (default 60 + 1 "
                             "per 50 clients)")
    parser.add_argument("--reconnection-delay", type=int, default=None,
                        help="socket.io-client reconnectionDelay (default: its own, 1000)")
    parser.add_argument("--reconnection-delay-max", type=int, default=None,
                        help="socket.io-client reconnectionDelayMax (default: its own, 5000)")
    parser.add_argument("--randomization-factor", type=float, default=None,
                        help="socket.io-client randomizationFactor (default: its own, 0.5)")
    parser.add_argument("--gateway-rev", default=None, metavar="REV",
                        help="run the gateways from gateway/ and shared/ as committed in REV "
                             "(exported with git archive) instead of the working tree")
    parser.add_argument("--nice", type=int, default=10,
                        help="niceness of the load: the node processes and the balancers (they "
                             "stand for other machines; at 0 they take the survivor's CPU)")
    parser.add_argument("--gateway-env", action="append", default=[], metavar="SB_X=VALUE",
                        help="extra environment for the gateways (repeatable)")
    parser.add_argument("--quiet-wait", type=float, default=0.0, metavar="S",
                        help="before each run, wait up to S s for the box to be quiet (added "
                             "to the --max-minutes bound)")
    parser.add_argument("--quiet-limit", type=float, default=25.0, metavar="PCT",
                        help="quiet = the box busy below PCT %% of one core over 3 s (25)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="hard bound on the whole invocation (default 2 + 1 per 2,000 "
                             "clients, per run)")
    args = parser.parse_args(argv)
    if args.clients is None:
        args.clients = 200 if args.quick else 1000
    if args.mode is None:
        args.mode = "both" if args.quick else "kill"
    if args.gateways < 2:
        parser.error("--gateways must be at least 2 (one to kill, one to recover on)")
    if args.gateways > 10:
        parser.error("--gateways: at most 10")
    if args.clients < 1 or args.runs < 1:
        parser.error("--clients and --runs must be positive")
    if args.client_procs is None:
        args.client_procs = math.ceil(args.clients / CLIENTS_PER_PROC)
    if args.lb_procs is None:
        args.lb_procs = max(2, math.ceil(args.clients / CLIENTS_PER_PROC))
    if not 1 <= args.client_procs <= args.clients or not 1 <= args.lb_procs <= 32:
        parser.error("--client-procs must be 1..clients, --lb-procs 1..32")
    if args.rooms is None:
        args.rooms = max(10, math.ceil(args.clients / CLIENTS_PER_ROOM))
    if args.rooms < 1:
        parser.error("--rooms must be positive")
    if args.setup_timeout is None:
        args.setup_timeout = 60 + args.clients / 50
    if args.recovery_timeout is None:
        args.recovery_timeout = 60 + (args.drain_window_s or 10.0) * (args.mode != "kill")
    args.modes = ["kill", "drain"] if args.mode == "both" else [args.mode]
    if args.max_minutes is None:
        args.max_minutes = (2 + args.clients / 2000) * args.runs * len(args.modes)
    args.max_minutes += args.quiet_wait / 60 * args.runs * len(args.modes)
    return args


async def run_all(args: argparse.Namespace, logs: Path, out: IO[bytes]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for run, mode in enumerate((m for _ in range(args.runs) for m in args.modes), start=1):
        busy_before = None
        if args.quiet_wait > 0:
            busy_before = await asyncio.to_thread(wait_quiet, args.quiet_limit, args.quiet_wait)
        revision = gateway_revision(args.gateway_rev)
        result = await run_once(args, run, mode, logs)
        result["revision"] = revision
        result["box_busy_before_pct"] = busy_before
        out.write(orjson.dumps({"type": "run", "at": time.time(), **result}) + b"\n")
        out.flush()
        results.append(result)
        print(table([result]).splitlines()[-1], flush=True)
        print(detail(result), flush=True)
        dirty = ", with uncommitted changes" if revision["dirty"] else ""
        print(f"  gateway measured at commit {revision['commit']} ({revision['source']}; "
              f"gateway/shared last changed in {revision['gateway_commit']}{dirty})",
              flush=True)
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
    fds = raise_fd_limit(args)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    logs = RESULTS / f"recovery-{stamp}-logs"
    logs.mkdir()
    path = RESULTS / f"recovery-{stamp}.jsonl"
    print(f"results: {path}\nlogs:    {logs}", flush=True)
    args.gateway_source = REPO
    if args.gateway_rev:  # pinned to a hash now: HEAD may move while we run
        args.gateway_rev = subprocess.run(
            ["git", "rev-parse", "--short", args.gateway_rev], cwd=REPO, capture_output=True,
            text=True, check=True, timeout=10).stdout.strip()
        args.gateway_source = export_revision(args.gateway_rev, logs / "gateway-src")
    with path.open("ab") as out:
        out.write(orjson.dumps({"type": "setup", "at": time.time(), "args": vars(args),
                                "versions": versions(), "cpus": os.cpu_count(),
                                "fds": fds,
                                "revision": gateway_revision(args.gateway_rev)},
                               default=str) + b"\n")
        try:
            import uvloop
        except ImportError:
            return asyncio.run(main_async(args, logs, out))
        return uvloop.run(main_async(args, logs, out))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
