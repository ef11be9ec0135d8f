"""Presence benchmarks: notices one replica ingests per second, and what a rolling restart of a
gateway announces.

**ingest.** nats-server, a liveness key for a fake gateway (``RegistryKV.beat``, refreshed by
this process, so its records count as live) and ``--replicas`` presence replicas (``python -m
presence``). This process is the load generator: ``--notices`` socket records (default 20,000)
for ``--notices / 5`` sockets of ``--users`` users, each socket connecting, joining two of
``--rooms`` rooms, leaving one and disconnecting (5 records each, seq 1..5). They go out in
phases (every connect, then every first join, ...), so a fetched batch never holds two
records of one socket and the replica's in-batch coalescing saves nothing: every notice is
one compare-and-set write. They are published to the work queue with ``publish_async``
(pipelined, as fast as JetStream acks), and the run ends when the stream is empty (a
work-queue message is deleted when the replica acks it, after storing it).

- ``--ingest-mode live``: the replicas run while the generator publishes; the rate is
  notices / (first publish -> queue empty), generator included on the same 2 cores.
- ``--ingest-mode backlog``: the queue is filled first, then the replicas start; the rate is
  notices / (first delivery -> queue empty): the replica alone.
- ``--ingest-mode staggered`` (2+ replicas): replica 0 runs alone and the others start once
  ``--stagger-at`` of the notices were delivered (scaling out under load);
- ``--ingest-mode stop-one`` (2+ replicas): all run and the last one is stopped (SIGTERM, a
  clean leave) at that point. Its metrics go with it, so only the frames are checked.

Reported: notices/s, the replicas' CPU (% of one core, /proc) and CPU per notice, nats-server's
and the generator's CPU, ``other %`` (the machine's busy time minus our processes: a busy
neighbour on a shared box shows up there, and the rate then says little), the replicas' own
notice count (``switchboard_presence_events_total``;
above the notices = redeliveries), and once the grace has passed, the events they announced
(``switchboard_presence_updates_total`` by kind, summed over replicas: each event has one
owner) against what the scenario implies, and the frames seen on ``sb.fan.chat.*`` (every
``(room, user)`` pair must be announced ``joined`` once and ``left`` once).

**restart.** nats-server, 2 presence replicas, gateways A and B (``SB_DRAIN_WINDOW_S``
``--drain-window``), a TCP proxy in this process playing the load balancer (pointing at A),
and ``--clients`` unmodified socket.io-client sockets (one node process,
``bench/presence/clients.mjs``) through it, each its own user, joined to ``--rooms-per-client``
of ``--restart-rooms`` rooms of ``/chat``. A raw NATS subscriber on ``sb.fan.chat.*`` sees every
frame presence announces, exactly once. Then a rolling restart of A: the proxy is switched to B
and A gets SIGTERM (it closes every socket with 1012 over the drain window); the clients
reconnect (through the proxy, to B) and recover their sessions; once A has exited it is
started again (same port and instance id, a new boot) and put back behind the proxy.
Counted: every presence:update and typing frame from the SIGTERM until every client is back
and A is ready, plus 2 x grace.

- case ``within``: socket.io-client's own reconnection delays (1 s +- 50 %), i.e. back well
  within the grace: the count should be ~0.
- case ``after``: every client waits grace + ``--late-extra`` s before reconnecting
  (``reconnectionDelay`` = ``reconnectionDelayMax``, no randomization): everyone goes offline
  and leaves, then comes back: the count shows the counter works. Per user and room that is
  ``offline`` + ``left``, then ``joined`` + ``online`` (``online`` goes to the user's first
  rooms once they have joined them).

Afterwards every room's membership is asked of presence (``room:presence`` over NATS).

    npm ci --prefix bench/recovery                 # once: socket.io-client 4.8.4 (shared)
    .venv/bin/python bench/presence.py --measure ingest     # 1 and 2 replicas, live + backlog
    .venv/bin/python bench/presence.py --measure ingest --ingest-mode all --replicas 2
    .venv/bin/python bench/presence.py --measure restart    # 1,000 clients, both cases
    .venv/bin/python bench/presence.py --measure restart --cases within --clients 200

One JSON line per measurement in bench/results/presence-<time>.jsonl (logs next to it); the
tables go to stdout. Everything listens on 127.0.0.1; every child is stopped in ``finally``
and dies with the runner (PR_SET_PDEATHSIG; nats-server, which runs in its own session, has a
watchdog that does the same), and the whole run is bounded by ``--max-minutes``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import nats
import nats.errors
import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from devcluster.tcpproxy import SwitchProxy
from shared.presence_queue import CONSUMER, ensure_queue
from shared.presence_wire import SocketRecord, encode, room_key
from shared.registry_kv import RegistryKV
from shared.subjects import Subjects

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchproc
from benchproc import (
    Child,
    CpuSnapshot,
    NodeDriver,
    cpu_percent,
    free_port,
    mint_tokens,
    scrape_metrics,
    snapshot,
    wait_http_ok,
)

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CLIENTS_JS = BENCH / "presence" / "clients.mjs"
SOCKETIO_DIR = BENCH / "recovery" / "node_modules" / "socket.io-client"
RESULTS = BENCH / "results"

PREFIX = "sb"
SUBJECTS = Subjects(PREFIX)
NAMESPACE = "/chat"
FAKE_GATEWAY = "bench-gw"
POLL_S = 0.05
STEPS = ("connect", "join", "join", "leave", "disconnect")

# Kills nats-server if the runner dies (PDEATHSIG sends this process SIGTERM) or overstays its
# bound; SIGUSR1 is the runner's "all is well, just exit" (it then stops nats-server itself).
WATCHDOG = """
import os, shutil, signal, sys, time
pid, bound, directory = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
def reap(*_):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"nats-server" in f.read():
                os.kill(pid, signal.SIGKILL)
                time.sleep(0.5)
    except OSError:
        pass
    shutil.rmtree(directory, ignore_errors=True)
    os._exit(0)
signal.signal(signal.SIGTERM, reap)
signal.signal(signal.SIGUSR1, lambda *_: os._exit(0))
time.sleep(bound)
reap()
"""


# -- plumbing ---------------------------------------------------------------------------------


async def start_nats(stack: contextlib.AsyncExitStack, logs: Path, bound_s: float) -> Any:
    """nats-server (JetStream) on a free port, stopped by ``stack``, guarded by a watchdog."""
    from devcluster.natsserver import NatsServer

    server = NatsServer()
    await asyncio.to_thread(server.start)
    stack.callback(server.stop)
    watchdog = Child("nats-watchdog", [sys.executable, "-c", WATCHDOG, str(server.pid),
                                       str(int(bound_s)), str(server.directory)],
                     logs / "nats-watchdog.log")

    def release() -> None:
        if watchdog.alive():
            watchdog.proc.send_signal(signal.SIGUSR1)
            with contextlib.suppress(subprocess.TimeoutExpired):
                watchdog.proc.wait(2)
        watchdog.stop()

    stack.callback(release)  # runs before server.stop (the stack unwinds in reverse)
    return server


async def nats_connect(stack: contextlib.AsyncExitStack, url: str) -> NatsClient:
    nc = await nats.connect(url, name="bench-presence", connect_timeout=2,
                            max_reconnect_attempts=3)
    stack.push_async_callback(nc.close)
    return nc


def start_presence(stack: contextlib.AsyncExitStack, nats_url: str, name: str, logs: Path,
                   extra: dict[str, str]) -> tuple[Child, int]:
    port = free_port()
    env = {**os.environ, "SB_HOST": "127.0.0.1", "SB_PORT": str(port), "SB_NATS_URL": nats_url,
           "SB_INSTANCE_ID": name, "SB_SUBJECT_PREFIX": PREFIX, "SB_LOG_LEVEL": "INFO",
           **extra}
    child = Child(name, [sys.executable, "-m", "presence"], logs / f"{name}.log", env=env,
                  cwd=REPO)
    stack.callback(child.stop)
    return child, port


def start_gateway(stack: contextlib.AsyncExitStack, nats_url: str, name: str, port: int,
                  secret: str, log_path: Path, extra: dict[str, str]) -> Child:
    env = {**os.environ, "SB_HOST": "127.0.0.1", "SB_PORT": str(port), "SB_NATS_URL": nats_url,
           "SB_INSTANCE_ID": name, "SB_SUBJECT_PREFIX": PREFIX, "SB_JWT_SECRET": secret,
           "SB_LOG_LEVEL": "INFO", **extra}
    child = Child(name, [sys.executable, "-m", "gateway"], log_path, env=env, cwd=REPO)
    stack.callback(child.stop)
    return child


async def ready(child: Child, port: int, within: float = 60.0) -> None:
    await asyncio.to_thread(wait_http_ok, f"http://127.0.0.1:{port}/readyz", child, within)


def scrape(port: int) -> dict[str, float]:
    """A replica's switchboard_presence_* samples, keyed by name plus labels."""
    return scrape_metrics(f"http://127.0.0.1:{port}", "switchboard_presence_")


def by_label(samples: Sequence[dict[str, float]], name: str) -> dict[str, int]:
    """``name{label="x"}`` summed over replicas, keyed by the label's value."""
    total: dict[str, int] = {}
    for found in samples:
        for key, value in found.items():
            if key.startswith(name + "{"):
                label = key.split('="', 1)[1].split('"', 1)[0]
                total[label] = total.get(label, 0) + round(value)
    return total


def minus(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


class FrameCounter:
    """Every frame presence publishes on the rooms' fan-out subjects, with its arrival time.

    Kinds: the ``status`` of a ``presence:update`` (online/offline/joined/left), ``count`` for a
    summary, ``typing:start``/``typing:stop``, ``other`` for anything else (chat messages).
    """

    def __init__(self) -> None:
        self.frames: list[tuple[float, str]] = []

    async def on_msg(self, msg: Msg) -> None:
        kind = "other"
        with contextlib.suppress(orjson.JSONDecodeError):
            body = orjson.loads(msg.data)
            if isinstance(body, list) and body and isinstance(body[-1], dict):
                if body[0] == "presence:update":
                    kind = str(body[1].get("status", "count" if "count" in body[1] else "?"))
                elif body[0] in ("typing:start", "typing:stop"):
                    kind = body[0]
        self.frames.append((time.time(), kind))

    def count(self, since: float = 0.0, until: float = float("inf")) -> dict[str, int]:
        found: dict[str, int] = {}
        for at, kind in self.frames:
            if since <= at <= until:
                found[kind] = found.get(kind, 0) + 1
        return found


def fmt_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())) or "none"


def presence_frames(counts: dict[str, int]) -> int:
    return sum(v for k, v in counts.items() if k != "other")


# -- ingest -----------------------------------------------------------------------------------


def build_notices(args: argparse.Namespace) -> tuple[list[bytes], dict[str, int]]:
    """The records, in phases, and the events presence must announce for them in the end."""
    rng = random.Random(args.seed)
    sockets = args.notices // len(STEPS)
    boot = secrets.token_hex(4)
    plans = []
    for n in range(sockets):
        one, two = rng.sample(range(args.rooms), 2)
        plans.append((f"c{n}", f"bench-u{n % args.users}", room_key(NAMESPACE, f"room:ing-{one}"),
                      room_key(NAMESPACE, f"room:ing-{two}")))
    stamp = time.time()
    payloads: list[bytes] = []
    for seq, step in enumerate(STEPS, start=1):
        for conn, user, first, second in plans:
            rooms = {"connect": (), "join": (first,) if seq == 2 else (first, second),
                     "leave": (second,), "disconnect": ()}[step]
            stamp += 1e-6
            payloads.append(encode(SocketRecord(FAKE_GATEWAY, boot, conn, user,
                                                frozenset(rooms), step != "disconnect", seq,
                                                stamp)))
    users = {user for _, user, _, _ in plans}
    pairs = {(room, user) for _, user, a, b in plans for room in (a, b)}
    expected = {"online": len(users), "offline": len(users), "joined": len(pairs),
                "left": len(pairs)}
    return payloads, expected


async def publish_all(nc: NatsClient, payloads: list[bytes], pipeline: int,
                      within: float) -> tuple[float, float, int]:
    """Publish with acks, ``pipeline`` in flight; (start, end, failures) on time.time()."""
    js = nc.jetstream(timeout=within, publish_async_max_pending=pipeline)
    subject = SUBJECTS.presence_events()
    started = time.time()
    futures = [await js.publish_async(subject, payload) for payload in payloads]
    results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), within)
    failures = sum(isinstance(r, BaseException) for r in results)
    return started, time.time(), failures


async def wait_drained(nc: NatsClient, publishing: asyncio.Task[Any] | None, within: float,
                       pids: dict[str, int]) -> tuple[float | None, float, CpuSnapshot]:
    """(first delivery, queue empty) on time.time(), polled every POLL_S, and a CPU snapshot
    taken at the start (live: ``publishing`` given) or at the first delivery (backlog)."""
    js = nc.jetstream(timeout=5.0)
    stream = SUBJECTS.presence_stream()
    first: float | None = None
    before = snapshot(pids) if publishing is not None else None
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        now = time.time()
        if first is None:
            with contextlib.suppress(NotFoundError):
                info = await js.consumer_info(stream, CONSUMER)
                if info.delivered is not None and (info.delivered.consumer_seq or 0) > 0:
                    first = now
                    before = before or snapshot(pids)
        if publishing is None or publishing.done():
            if publishing is not None and publishing.exception() is not None:
                raise RuntimeError(f"publishing failed: {publishing.exception()!r}")
            state = (await js.stream_info(stream)).state
            if state.messages == 0 and before is not None:
                return first, now, before
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"the work queue was not drained within {within:g} s")


async def wait_delivered(nc: NatsClient, count: int, within: float) -> None:
    """Until the presence consumer has handed out ``count`` notices."""
    js = nc.jetstream(timeout=5.0)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(NotFoundError):
            info = await js.consumer_info(SUBJECTS.presence_stream(), CONSUMER)
            if info.delivered is not None and (info.delivered.consumer_seq or 0) >= count:
                return
        await asyncio.sleep(POLL_S / 5)
    raise TimeoutError(f"fewer than {count} notices delivered within {within:g} s")


async def settle(ports: list[int], expected: dict[str, int], within: float,
                 floor: float) -> list[dict[str, float]]:
    """Scrape the replicas until the announced updates match ``expected`` (or stop changing
    for a second after ``floor`` seconds), at most ``timeout`` s."""
    started = time.monotonic()
    last: dict[str, int] | None = None
    stable_since = started
    while True:
        samples = [await asyncio.to_thread(scrape, port) for port in ports]
        updates = by_label(samples, "switchboard_presence_updates_total")
        elapsed = time.monotonic() - started
        if all(updates.get(k, 0) >= v for k, v in expected.items()):
            return samples
        if updates != last:
            last, stable_since = updates, time.monotonic()
        elif elapsed > floor and time.monotonic() - stable_since > 1.0:
            return samples
        if elapsed > within:
            return samples
        await asyncio.sleep(0.25)


async def ingest_once(args: argparse.Namespace, replicas: int, mode: str, logs: Path,
                      bound_s: float) -> dict[str, Any]:
    logs = logs / f"ingest-{mode}-{replicas}r"
    logs.mkdir()
    payloads, expected = build_notices(args)
    total = len(payloads)
    extra = dict(kv.split("=", 1) for kv in args.presence_env)
    extra.setdefault("SB_PRESENCE_GRACE_S", f"{args.grace:g}")
    async with contextlib.AsyncExitStack() as stack:
        server = await start_nats(stack, logs, bound_s)
        nc = await nats_connect(stack, server.url)
        frames = FrameCounter()
        await nc.subscribe(f"{PREFIX}.fan.*.*", cb=frames.on_msg)
        registry = await RegistryKV.open(nc, PREFIX, 3.0)
        stack.push_async_callback(registry.close)
        await registry.beat(FAKE_GATEWAY)
        await ensure_queue(nc.jetstream(timeout=5.0), SUBJECTS, 1)
        js = nc.jetstream(timeout=5.0)
        if mode == "backlog":
            pub_start, pub_end, failures = await publish_all(nc, payloads, args.pipeline, 60.0)
            queued = (await js.stream_info(SUBJECTS.presence_stream())).state.messages
            print(f"  [{mode}, {replicas} replica(s)] {queued:,} notices queued in "
                  f"{pub_end - pub_start:.2f} s ({total / (pub_end - pub_start):,.0f}/s); "
                  "starting the replicas", flush=True)
        starting = 1 if mode == "staggered" else replicas
        children = [start_presence(stack, server.url, f"presence-{i}", logs, extra)
                    for i in range(starting)]
        pids = {child.name: child.pid for child, _ in children}
        pids.update({"nats-server": server.pid, "generator": os.getpid()})
        if mode == "backlog":
            # the CPU window opens at the first delivery: start-up and restore are not in it
            first, done, before = await wait_drained(nc, None, args.ingest_timeout, pids)
            assert first is not None
            window_start = first
        else:
            for child, port in children:
                await ready(child, port)
            await asyncio.sleep(0.5)
            publishing = asyncio.create_task(publish_all(nc, payloads, args.pipeline, 60.0))
            if mode == "staggered":
                # the others join while notices flow; the CPU window opens when they start
                await wait_delivered(nc, int(total * args.stagger_at), args.ingest_timeout)
                late = [start_presence(stack, server.url, f"presence-{i}", logs, extra)
                        for i in range(starting, replicas)]
                children += late
                pids.update({child.name: child.pid for child, _ in late})
            elif mode == "stop-one":
                # the last replica leaves cleanly (SIGTERM) while notices flow
                await wait_delivered(nc, int(total * args.stagger_at), args.ingest_timeout)
                victim, _ = children.pop()
                await asyncio.to_thread(victim.stop)
            first, done, before = await wait_drained(nc, publishing, args.ingest_timeout, pids)
            pub_start, pub_end, failures = publishing.result()
            window_start = pub_start
        ports = [port for _, port in children]
        after = snapshot(pids)
        cpu = cpu_percent(before, after)
        cpu_window = after.at - before.at
        seconds = done - window_start
        samples = await settle(ports, expected, within=args.grace + 15.0, floor=args.grace + 1.0)
        events = by_label(samples, "switchboard_presence_events_total")
        updates = by_label(samples, "switchboard_presence_updates_total")
        ingest_sum = sum(s.get("switchboard_presence_ingest_seconds_sum", 0.0) for s in samples)
        batches = sum(s.get("switchboard_presence_ingest_seconds_count", 0.0) for s in samples)
    replica_cpu = {name: cpu[name] for name in pids if name.startswith("presence-")}
    cpu_seconds = sum((v or 0.0) for v in replica_cpu.values()) / 100.0 * cpu_window
    return {
        "measure": "ingest", "mode": mode, "replicas": replicas, "notices": total,
        "sockets": total // len(STEPS), "users": args.users, "rooms": args.rooms,
        "publish_failures": failures, "publish_s": round(pub_end - pub_start, 3),
        "publish_per_s": round(total / (pub_end - pub_start)),
        "first_delivery_after_publish_s": round(first - pub_start, 3) if first else None,
        "seconds": round(seconds, 3), "notices_per_s": round(total / seconds),
        "cpu_window_s": round(cpu_window, 3), "cpu": cpu,
        "replica_cpu_us_per_notice": round(cpu_seconds / total * 1e6, 1),
        # a stopped replica's metrics are gone with it: only the frames are complete then
        "counted_by_replicas": events,
        "redelivered": None if mode == "stop-one" else sum(events.values()) - total,
        "store_batches": round(batches), "store_seconds": round(ingest_sum, 3),
        "updates": updates, "expected_updates": expected,
        "updates_match": None if mode == "stop-one" else all(
            updates.get(k, 0) == v for k, v in expected.items()),
        "frames": frames.count(),
        # every (room, user) pair must be announced joined once and left once
        "frames_match": all(frames.count().get(k, 0) == expected[k] for k in ("joined", "left")),
    }


def ingest_table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| mode | replicas | notices | notices/s | s | publish/s | replica CPU % | "
        "CPU µs/notice | nats-server % | generator % | machine % | other % | redelivered | "
        "announced (expected) | frames on sb.fan |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cpu = r["cpu"]
        replica = " + ".join(str(v) for k, v in cpu.items() if k.startswith("presence-"))
        announced = ", ".join(f"{k} {r['updates'].get(k, 0):,} ({v:,})"
                              for k, v in r["expected_updates"].items())
        generator = cpu.get("generator") if r["mode"] != "backlog" else "-"
        rows.append(
            f"| {r['mode']} | {r['replicas']} | {r['notices']:,} | **{r['notices_per_s']:,}** | "
            f"{r['seconds']} | {r['publish_per_s']:,} | {replica} | "
            f"{r['replica_cpu_us_per_notice']} | {cpu.get('nats-server')} | {generator} | "
            f"{cpu.get('machine')} | {cpu.get('unattributed')} | {r['redelivered']} | "
            f"{announced} | "
            f"{fmt_counts(r['frames'])} |")
    ratios = []
    for mode in ("live", "backlog"):
        by = {r["replicas"]: r["notices_per_s"] for r in results if r["mode"] == mode}
        if 1 in by and 2 in by:
            ratios.append(f"{mode}: 2 replicas / 1 = {by[2] / by[1]:.2f}x")
    return "\n".join(rows + (["", *ratios] if ratios else []))


# -- restart ----------------------------------------------------------------------------------


class NodeClients(NodeDriver):
    """``clients.mjs``: commands as JSON lines on its stdin, events as JSON lines from stdout."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        super().__init__("node", CLIENTS_JS, config_path, log_path, SOCKETIO_DIR)

class Reconnects:
    """Follows the clients' disconnect/connect lines while the restart runs."""

    def __init__(self, clients: NodeClients, total: int) -> None:
        self.clients = clients
        self.total = total
        self.connected: dict[int, float] = {}
        self.disconnected: dict[int, float] = {}
        self.recovered = 0
        self.disconnects: dict[str, int] = {}
        self.connect_errors = 0
        self.all_back = asyncio.Event()
        self.reports: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def follow(self) -> None:
        while True:
            event = await self.clients.next_event(3600)
            kind = event.get("event")
            if kind == "connect":
                self.connected[event["i"]] = event["t"] / 1000
                self.recovered += bool(event.get("recovered"))
                if len(self.connected) >= self.total:
                    self.all_back.set()
            elif kind == "disconnect":
                self.disconnected.setdefault(event["i"], event["t"] / 1000)
                reason = str(event.get("reason"))
                self.disconnects[reason] = self.disconnects.get(reason, 0) + 1
            elif kind == "connect_error":
                self.connect_errors += 1
            elif kind == "report":
                self.reports.put_nowait(event)


async def members(nc: NatsClient, room: str) -> int | None:
    try:
        reply = await nc.request(SUBJECTS.presence_query(),
                                 orjson.dumps({"namespace": NAMESPACE, "room": room}), timeout=2)
    except (nats.errors.Error, TimeoutError):
        return None
    answer = orjson.loads(reply.data)
    return int(answer["count"]) if answer.get("ok") else None


async def wait_quiet(frames: FrameCounter, want_joined: int, within: float) -> None:
    """After the clients joined: until every join was announced and presence is idle."""
    deadline = time.monotonic() + within
    last = -1
    while time.monotonic() < deadline:
        seen = len(frames.frames)
        if frames.count().get("joined", 0) >= want_joined and seen == last:
            return
        last = seen
        await asyncio.sleep(1.0)
    print(f"  warning: only {frames.count().get('joined', 0)} of {want_joined} joins were "
          f"announced within {within:g} s", flush=True)


async def restart_once(args: argparse.Namespace, case: str, logs: Path,
                       bound_s: float) -> dict[str, Any]:
    logs = logs / f"restart-{case}"
    logs.mkdir()
    secret = secrets.token_urlsafe(32)
    presence_extra = dict(kv.split("=", 1) for kv in args.presence_env)
    presence_extra.setdefault("SB_PRESENCE_GRACE_S", f"{args.grace:g}")
    gateway_extra = {"SB_DRAIN_WINDOW_S": f"{args.drain_window:g}",
                     **dict(kv.split("=", 1) for kv in args.gateway_env)}
    rooms = [f"room:pr-{k}" for k in range(args.restart_rooms)]
    pairs = args.clients * args.rooms_per_client
    async with contextlib.AsyncExitStack() as stack:
        server = await start_nats(stack, logs, bound_s)
        nc = await nats_connect(stack, server.url)
        frames = FrameCounter()
        await nc.subscribe(f"{PREFIX}.fan.*.*", cb=frames.on_msg)
        replicas = [start_presence(stack, server.url, f"presence-{i}", logs, presence_extra)
                    for i in range(2)]
        for child, port in replicas:
            await ready(child, port)
        ports = {"A": free_port(), "B": free_port()}
        gateways = {name: start_gateway(stack, server.url, f"bench-pr-{name}", port, secret,
                                        logs / f"gateway-{name}.log", gateway_extra)
                    for name, port in ports.items()}
        for name, child in gateways.items():
            await ready(child, ports[name])
        upstream = {name: ("127.0.0.1", port) for name, port in ports.items()}
        proxy = await SwitchProxy([upstream["A"]]).start()
        stack.push_async_callback(proxy.stop)
        tokens = logs / "tokens.txt"
        mint_tokens(tokens, secret, args.clients, f"pr-{secrets.token_hex(3)}")
        options: dict[str, Any] = {}
        if case == "after":
            delay = int((args.grace + args.late_extra) * 1000)
            options = {"reconnectionDelay": delay, "reconnectionDelayMax": delay,
                       "randomizationFactor": 0}
        config = {"url": proxy.url, "namespace": NAMESPACE, "clients": args.clients,
                  "rooms": args.restart_rooms, "rooms_per_client": args.rooms_per_client,
                  "room_prefix": "room:pr-", "tokens_file": str(tokens), "client_options": options,
                  "connect_concurrency": args.connect_concurrency,
                  "max_lifetime_s": int(bound_s) + 30}
        config_path = logs / "clients.json"
        config_path.write_text(json.dumps(config, indent=1))
        clients = NodeClients(config_path, logs / "clients.log")
        stack.callback(clients.stop)
        setup = await clients.expect("ready", within=180)
        print(f"  [{case}] {setup['clients']:,} socket.io-client {setup['client_version']} "
              f"sockets connected through the proxy to gateway A and joined in "
              f"{setup['setup_ms'] / 1000:.1f} s", flush=True)
        await wait_quiet(frames, pairs, within=30.0)
        setup_frames = frames.count()
        metrics_before = [await asyncio.to_thread(scrape, p) for _, p in replicas]
        clients.send({"cmd": "watch"})
        await clients.expect("watching", within=10)

        follower = Reconnects(clients, args.clients)
        following = asyncio.create_task(follower.follow())
        stack.push_async_callback(_cancel, following)
        pids = {child.name: child.pid for child, _ in replicas}
        pids.update({"gateway-B": gateways["B"].pid, "nats-server": server.pid,
                     "node": clients.child.pid, "runner+proxy": os.getpid()})
        before = snapshot(pids)
        t0 = time.time()
        proxy.switch([upstream["B"]])  # the load balancer takes A out of rotation ...
        os.kill(gateways["A"].pid, signal.SIGTERM)  # ... and the deploy stops it
        code = await asyncio.to_thread(gateways["A"].proc.wait, args.drain_window + 30)
        t_exit = time.time()
        await asyncio.sleep(args.restart_delay)
        gateways["A"] = start_gateway(stack, server.url, "bench-pr-A", ports["A"], secret,
                                      logs / "gateway-A-2.log", gateway_extra)
        await ready(gateways["A"], ports["A"])
        t_ready = time.time()
        proxy.switch([upstream["A"], upstream["B"]])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(follower.all_back.wait(),
                                   max(1.0, t0 + args.reconnect_timeout - time.time()))
        last_back = max(follower.connected.values(), default=t0)
        t_settled = max(t_ready, last_back)
        t_end = t_settled + 2 * args.grace
        await asyncio.sleep(max(0.0, t_end - time.time()))
        after = snapshot(pids)
        window = frames.count(t0, t_end)
        metrics_after = [await asyncio.to_thread(scrape, p) for _, p in replicas]
        clients.send({"cmd": "report"})
        report = await asyncio.wait_for(follower.reports.get(), 30)
        counts = [await members(nc, room) for room in rooms]
    expected_members = args.clients * args.rooms_per_client // args.restart_rooms
    updates = minus(by_label(metrics_after, "switchboard_presence_updates_total"),
                    by_label(metrics_before, "switchboard_presence_updates_total"))
    gone = round(sum(m.get("switchboard_presence_gateways_down_total", 0.0) for m in metrics_after))
    reconnect_s = sorted(t - t0 for t in follower.connected.values())
    away = {i: t - follower.disconnected[i] for i, t in follower.connected.items()
            if i in follower.disconnected}
    away_s = sorted(away.values())
    over = sorted((round(v, 2), i) for i, v in away.items() if v > args.grace)
    return {
        "measure": "restart", "case": case, "clients": args.clients,
        "rooms": args.restart_rooms, "rooms_per_client": args.rooms_per_client,
        "grace_s": args.grace, "drain_window_s": args.drain_window,
        "client_options": options, "setup_ms": setup["setup_ms"],
        "setup_frames": setup_frames,
        "restart_delay_s": args.restart_delay,
        "a_exit_code": code, "a_exit_s": round(t_exit - t0, 2),
        "a_ready_again_s": round(t_ready - t0, 2),
        "reconnected": len(follower.connected), "recovered": follower.recovered,
        "disconnect_reasons": follower.disconnects, "connect_errors": follower.connect_errors,
        "reconnect_s": {"first": round(reconnect_s[0], 2) if reconnect_s else None,
                        "p50": round(reconnect_s[len(reconnect_s) // 2], 2)
                        if reconnect_s else None,
                        "last": round(reconnect_s[-1], 2) if reconnect_s else None},
        "away_s": {"p50": round(away_s[len(away_s) // 2], 2) if away_s else None,
                   "max": round(away_s[-1], 2) if away_s else None,
                   "over_grace": len(over), "over_grace_clients": over[:20]},
        "window_s": round(t_end - t0, 2),
        "frames": window, "presence_frames": presence_frames(window),
        "frames_per_user": round(presence_frames(window) / args.clients, 3),
        "announced_events": updates, "gateways_down": gone,
        "client_report": {k: v for k, v in report.items() if k != "event"},
        "members_after": {"expected_per_room": expected_members,
                          "rooms_ok": sum(c == expected_members for c in counts),
                          "rooms": len(rooms),
                          "counts": sorted({str(c) for c in counts})},
        "cpu": cpu_percent(before, after),
    }


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, RuntimeError):
        await task


def restart_table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| case | clients | reconnected (recovered) | reconnect s first/p50/last | "
        "A exit / ready s | window s | **presence frames** | per user | frames by kind | "
        "events announced | members ok |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rec = r["reconnect_s"]
        m = r["members_after"]
        rows.append(
            f"| {r['case']} | {r['clients']:,} | {r['reconnected']:,} ({r['recovered']:,}) | "
            f"{rec['first']}/{rec['p50']}/{rec['last']} | {r['a_exit_s']} / "
            f"{r['a_ready_again_s']} | {r['window_s']} | **{r['presence_frames']:,}** | "
            f"{r['frames_per_user']} | {fmt_counts(r['frames'])} | "
            f"{fmt_counts(r['announced_events'])} | {m['rooms_ok']}/{m['rooms']} |")
    return "\n".join(rows)


def restart_detail(r: dict[str, Any]) -> str:
    c = r["client_report"]
    return "\n".join([
        f"  [{r['case']}] setup frames (joins): {fmt_counts(r['setup_frames'])}",
        f"  [{r['case']}] disconnects {r['disconnect_reasons']}, connect errors "
        f"{r['connect_errors']}, gateways closed by presence {r['gateways_down']}",
        f"  [{r['case']}] clients: connected {c['connected']}, rejoin failures "
        f"{c['rejoin_failures']}, presence events received in the window "
        f"{fmt_counts(c['received_watched'])}",
        f"  [{r['case']}] time away (client disconnect -> connect) p50 {r['away_s']['p50']} s, "
        f"max {r['away_s']['max']} s; over the grace: {r['away_s']['over_grace']} "
        f"{r['away_s']['over_grace_clients']}",
        f"  [{r['case']}] members per room afterwards {r['members_after']['counts']} "
        f"(expected {r['members_after']['expected_per_room']})",
        f"  [{r['case']}] CPU % " + ", ".join(f"{k} {v}" for k, v in r["cpu"].items()),
    ])


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Presence: ingest rate, rolling restart.")
    parser.add_argument("--measure", choices=("ingest", "restart", "all"), default="all")
    parser.add_argument("--grace", type=float, default=5.0, help="SB_PRESENCE_GRACE_S, s")
    parser.add_argument("--presence-env", action="append", default=[], metavar="SB_X=VALUE",
                        help="extra environment for the presence replicas (repeatable)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="hard bound on the whole invocation (default 3 per measure)")
    group = parser.add_argument_group("ingest")
    group.add_argument("--notices", type=int, default=20_000,
                       help="socket records (rounded down to a multiple of 5)")
    group.add_argument("--users", type=int, default=2_000)
    group.add_argument("--rooms", type=int, default=300)
    group.add_argument("--replicas", default="1,2", help="replica counts to run, in order")
    group.add_argument("--ingest-mode", default="both",
                       choices=("live", "backlog", "staggered", "stop-one", "both", "all"),
                       help="both = live + backlog; all adds staggered and stop-one (replicas "
                            ">= 2 only: replica 0 runs and the others start, or all run and the "
                            "last one is stopped, once --stagger-at of the notices were "
                            "delivered)")
    group.add_argument("--stagger-at", type=float, default=0.3)
    group.add_argument("--pipeline", type=int, default=4_000,
                       help="publishes awaiting their ack at once")
    group.add_argument("--ingest-timeout", type=float, default=60.0)
    group.add_argument("--seed", type=int, default=1)
    group = parser.add_argument_group("restart")
    group.add_argument("--clients", type=int, default=1_000)
    group.add_argument("--restart-rooms", type=int, default=50)
    group.add_argument("--rooms-per-client", type=int, default=1)
    group.add_argument("--drain-window", type=float, default=5.0, help="SB_DRAIN_WINDOW_S, s")
    group.add_argument("--cases", default="within,after",
                       help="within: default reconnection; after: grace + --late-extra s")
    group.add_argument("--late-extra", type=float, default=2.0)
    group.add_argument("--restart-delay", type=float, default=0.0,
                       help="s between A's exit and its new start (over SB_GATEWAY_TTL_S, 3, "
                            "A's liveness key expires in between)")
    group.add_argument("--reconnect-timeout", type=float, default=60.0,
                       help="s after the SIGTERM to wait for every client")
    group.add_argument("--connect-concurrency", type=int, default=50)
    group.add_argument("--gateway-env", action="append", default=[], metavar="SB_X=VALUE",
                       help="extra environment for the gateways (repeatable)")
    args = parser.parse_args(argv)
    args.notices -= args.notices % len(STEPS)
    args.replica_counts = [int(n) for n in args.replicas.split(",") if n.strip()]
    args.case_list = [c.strip() for c in args.cases.split(",") if c.strip()]
    if args.notices < len(STEPS) or args.users < 1 or args.rooms < 2:
        parser.error("--notices >= 5, --users >= 1, --rooms >= 2")
    if not args.replica_counts or not all(1 <= n <= 4 for n in args.replica_counts):
        parser.error("--replicas: a list of 1..4")
    if not set(args.case_list) <= {"within", "after"} or not args.case_list:
        parser.error("--cases: within and/or after")
    if args.clients < 1 or not 1 <= args.rooms_per_client <= args.restart_rooms:
        parser.error("--clients >= 1 and 1 <= --rooms-per-client <= --restart-rooms")
    if args.max_minutes is None:
        args.max_minutes = 3.0 * (2 if args.measure == "all" else 1)
    return args


def ensure_fds(clients: int) -> None:
    """The proxy holds two sockets per client; raise the soft limit if it is short."""
    need = 2 * clients + 512
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def run_all(args: argparse.Namespace, logs: Path, out: IO[bytes]) -> int:
    bound_s = args.max_minutes * 60 + 60
    status = 0
    if args.measure in ("ingest", "all"):
        modes = {"both": ["live", "backlog"],
                 "all": ["live", "backlog", "staggered", "stop-one"]}.get(
            args.ingest_mode, [args.ingest_mode])
        print(f"ingest: {args.notices:,} notices ({args.notices // 5:,} sockets x "
              f"{len(STEPS)} records, {args.users:,} users, {args.rooms} rooms), modes "
              f"{modes}, replicas {args.replica_counts}", flush=True)
        results = []
        for mode in modes:
            for replicas in args.replica_counts:
                if mode in ("staggered", "stop-one") and replicas < 2:
                    continue
                result = await ingest_once(args, replicas, mode, logs, bound_s)
                out.write(orjson.dumps({"type": "result", "at": time.time(), **result}) + b"\n")
                out.flush()
                results.append(result)
                print(f"  [{mode}, {replicas} replica(s)] {result['notices_per_s']:,} notices/s "
                      f"({result['seconds']} s), replicas' CPU "
                      f"{[v for k, v in result['cpu'].items() if k.startswith('presence-')]} %, "
                      f"announced {fmt_counts(result['updates'])}", flush=True)
                if (result["updates_match"] is False or not result["frames_match"]
                        or result["publish_failures"]):
                    status = 1
        print()
        print(ingest_table(results))
        print()
    if args.measure in ("restart", "all"):
        print(f"restart: {args.clients:,} clients in {args.restart_rooms} rooms "
              f"({args.rooms_per_client} each), grace {args.grace:g} s, drain window "
              f"{args.drain_window:g} s, cases {args.case_list}", flush=True)
        results = []
        for case in args.case_list:
            result = await restart_once(args, case, logs, bound_s)
            out.write(orjson.dumps({"type": "result", "at": time.time(), **result}) + b"\n")
            out.flush()
            results.append(result)
            print(restart_detail(result), flush=True)
            if result["reconnected"] < args.clients:
                status = 1
        print()
        print(restart_table(results))
    return status


async def main_async(args: argparse.Namespace, logs: Path, out: IO[bytes]) -> int:
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    bound = asyncio.timeout(args.max_minutes * 60)
    try:
        async with bound:
            return await run_all(args, logs, out)
    except TimeoutError as exc:
        message = (f"the run exceeded its {args.max_minutes:g} min bound" if bound.expired()
                   else f"timed out waiting ({exc})")
    except asyncio.CancelledError:
        message = "signalled"
    except (RuntimeError, OSError, nats.errors.Error) as exc:
        message = f"{type(exc).__name__}: {exc}"
    print(f"FAILED: {message}", file=sys.stderr, flush=True)
    out.write(orjson.dumps({"type": "error", "at": time.time(), "error": message}) + b"\n")
    return 2


def versions() -> dict[str, str]:
    found = benchproc.versions()
    with contextlib.suppress(OSError, ValueError, KeyError):
        found["socket.io-client"] = json.loads((SOCKETIO_DIR / "package.json").read_text())[
            "version"]
    return found


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    ensure_fds(args.clients)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    logs = RESULTS / f"presence-{stamp}-logs"
    logs.mkdir()
    path = RESULTS / f"presence-{stamp}.jsonl"
    print(f"results: {path}\nlogs:    {logs}", flush=True)
    started = time.monotonic()
    with path.open("ab") as out:
        out.write(orjson.dumps({"type": "run", "at": time.time(), "args": vars(args),
                                "versions": versions(), "cpus": os.cpu_count()}) + b"\n")
        try:
            import uvloop
        except ImportError:
            status = asyncio.run(main_async(args, logs, out))
        else:
            status = uvloop.run(main_async(args, logs, out))
    print(f"total {time.monotonic() - started:.0f} s")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
