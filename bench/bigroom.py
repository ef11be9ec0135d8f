"""In-process huge-room fan-out benchmark (issue 5, item 4): one room, 100,000 local members.

The real fan-out path with no sockets: ``MemoryBroker.publish(..., logged=True)`` -> the
namespace's ordered feed -> ``Fanout.write`` (frame once, hand the frame to every ``Member`` in
batches of ``batch``, ``await asyncio.sleep(0)`` between batches) -> each member's ``Outbox`` ->
the ``Flusher`` -> ``transport.write``. The transports are fakes that count writes and bytes
(no syscalls), so what is measured is the gateway's own Python work per message.

For every message it records:

- **publish -> last write**: from the ``publish`` call to the write that completes the
  message's 100,000th member (so it includes the feed, the framing, every push and every
  flush). Per member = that / members.
- **Fanout.write**: the gateway's own ``switchboard_gateway_fanout_seconds`` (framing and
  handing out, yields included, the last flush not included).
- **flush**: time spent inside ``Flusher.flush`` (joining and writing each outbox).
- **heartbeat lateness**: a task sleeping 5 ms in a loop records how late it woke; the worst
  lateness while the message was being fanned out is what a ping timer, a read or another
  namespace's feed would have waited. A batch size of ``members`` (``--control``) is the
  no-yield control.
- **other room, same namespace / other namespace**: one message published to a 1-member room
  right after the big one, in the same namespace and in another one: its publish -> write time.
  The same namespace shares one ordered feed (it waits for the whole big fan-out); another
  namespace has its own feed (it goes out between two batches).
- **GC**: collections (``gc.callbacks``) that ran while a message was being fanned out, and the
  longest pause; a collection stalls the loop whatever the batch size.

The probes' own (1-member) fan-outs, when sampled (1 in 8), are in the Fanout.write sum; they cost
microseconds.

    .venv/bin/python bench/bigroom.py                     # 100K members, 50 messages per row
    .venv/bin/python bench/bigroom.py --messages 50 --batches 500,2000,10000 --no-control

Results (one JSON object per row) go to bench/results/bigroom-<UTC time>.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.metadata
import json
import os
import platform
import signal
import statistics
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any, cast

import orjson
import uvloop
from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gateway.delivery import Member  # noqa: E402
from gateway.fanout import Fanout  # noqa: E402
from gateway.memory_broker import MemoryBroker, MemoryBus  # noqa: E402
from gateway.namespaces import NAMESPACES  # noqa: E402
from gateway.outbox import Flusher, Outbox  # noqa: E402
from shared.metrics import GatewayMetrics  # noqa: E402

UVLOOP = importlib.metadata.version("uvloop")
DURABLE = frozenset(name for name, ns in NAMESPACES.items() if ns.durable)
ROOM = "room:huge"
PROBE_ROOM = "room:probe"
BUDGET = 1_000_000  # SB_SEND_BUDGET_BYTES default
RESULTS = REPO / "bench" / "results"


class Counter:
    """Writes and bytes of a group of fake transports; resolves ``done`` at the target."""

    __slots__ = ("bytes", "done", "done_at", "target", "writes")

    def __init__(self) -> None:
        self.writes = 0
        self.bytes = 0
        self.target = 0
        self.done: asyncio.Future[None] | None = None
        self.done_at = 0.0

    def arm(self, target: int) -> asyncio.Future[None]:
        self.target = self.writes + target
        self.done = asyncio.get_running_loop().create_future()
        return self.done


class FakeTransport:
    """What an Outbox needs from an asyncio transport; counts instead of sending."""

    __slots__ = ("counter",)

    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    def write(self, data: bytes) -> None:
        c = self.counter
        c.writes += 1
        c.bytes += len(data)
        if c.writes == c.target:
            c.done_at = time.perf_counter()
            if c.done is not None and not c.done.done():
                c.done.set_result(None)

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False


def fake(counter: Counter) -> asyncio.WriteTransport:
    return cast(asyncio.WriteTransport, FakeTransport(counter))


class TimedFlusher(Flusher):
    """The gateway's Flusher, with the time spent in its flushes added up."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop, 0.0)
        self.spent = 0.0
        self.flushes = 0

    def flush(self) -> None:
        started = time.perf_counter()
        super().flush()
        self.spent += time.perf_counter() - started
        self.flushes += 1


class Heartbeat:
    """Sleeps ``interval`` in a loop and keeps the worst lateness since the last ``reset``."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.worst = 0.0
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def reset(self) -> None:
        self.worst = 0.0
        self.ticks = 0

    async def _run(self) -> None:
        interval = self.interval
        clock = time.perf_counter
        while True:
            before = clock()
            await asyncio.sleep(interval)
            late = clock() - before - interval
            self.ticks += 1
            if late > self.worst:
                self.worst = late


class GcWatch:
    """Garbage-collector pauses (``gc.callbacks``): the worst one and full (gen 2) collections
    since the last ``reset``; a pause stalls the loop whatever the batch size."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.collections = 0
        self.full = 0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        self.collections += 1
        if info["generation"] == 2:
            self.full += 1
        if pause > self.worst:
            self.worst = pause

    def reset(self) -> None:
        self.worst = 0.0
        self.collections = 0
        self.full = 0


GC = GcWatch()


def overflow() -> None:
    raise AssertionError("a fake transport never has a write buffer: no overflow expected")


def body_of(n: int, text_bytes: int) -> tuple[bytes, str]:
    """A fan-out body as ``send_message`` publishes it: the ``message:received`` args array."""
    msg_id = f"big-{n}"
    message = {"room": ROOM, "id": msg_id, "from": "bench-publisher",
               "text": "x" * text_bytes, "ts": int(time.time() * 1000)}
    return orjson.dumps(["message:received", message]), msg_id


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def run_row(nsp: str, batch: int, args: argparse.Namespace,
                  heartbeat: Heartbeat) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    tasks_before = asyncio.all_tasks()
    other_nsp = "/live-updates" if nsp in DURABLE else "/chat"
    registry = CollectorRegistry()
    bus = MemoryBus(DURABLE)
    broker = MemoryBroker(bus)
    fanout = Fanout(broker, GatewayMetrics(registry), batch, DURABLE)
    flusher = TimedFlusher(loop)

    big, probe_same, probe_other = Counter(), Counter(), Counter()
    started = time.perf_counter()
    # offsets=True: the member recovers (its socket has a pid), so a logged message carries
    # the offset as its last argument, as it does for socket.io-client with recovery on.
    for _ in range(args.members):
        member = Member(Outbox(fake(big), flusher, BUDGET, overflow), offsets=True)
        await fanout.join((nsp, ROOM), member)
    for counter, space in ((probe_same, nsp), (probe_other, other_nsp)):
        member = Member(Outbox(fake(counter), flusher, BUDGET, overflow))
        await fanout.join((space, PROBE_ROOM), member)
    join_s = time.perf_counter() - started

    sum_sample = "switchboard_gateway_fanout_seconds_sum"
    count_sample = "switchboard_gateway_fanout_seconds_count"
    rows: list[dict[str, float]] = []
    frame_bytes = 0
    gc.collect()
    for n in range(args.warmup + args.messages):
        body, msg_id = body_of(n, args.text_bytes)
        done = big.arm(args.members)
        same_done = probe_same.arm(1)
        other_done = probe_other.arm(1)
        bytes_before = big.bytes
        flush_before = flusher.spent
        write_before = registry.get_sample_value(sum_sample) or 0.0
        heartbeat.reset()
        GC.reset()
        t0 = time.perf_counter()
        await broker.publish(nsp, ROOM, body, msg_id, logged=True)
        t_published = time.perf_counter()
        probe_body, probe_id = body_of(10_000_000 + n, 16)
        t_probe = time.perf_counter()
        await broker.publish(nsp, PROBE_ROOM, probe_body, probe_id, logged=True)
        await broker.publish(other_nsp, PROBE_ROOM, probe_body, probe_id, logged=True)
        await asyncio.wait_for(asyncio.gather(done, same_done, other_done), 30)
        worst_late = heartbeat.worst
        ticks = heartbeat.ticks
        gc_worst, gc_count, gc_full = GC.worst, GC.collections, GC.full
        frame_bytes = (big.bytes - bytes_before) // args.members
        write_after = registry.get_sample_value(sum_sample) or 0.0
        if n >= args.warmup:
            rows.append({
                "total_ms": (big.done_at - t0) * 1000,
                "publish_call_ms": (t_published - t0) * 1000,
                "fanout_write_ms": (write_after - write_before) * 1000,
                "flush_ms": (flusher.spent - flush_before) * 1000,
                "heartbeat_worst_ms": worst_late * 1000,
                "heartbeat_ticks": ticks,
                "gc_collections": gc_count,
                "gc_full": gc_full,
                "gc_worst_pause_ms": gc_worst * 1000,
                "same_nsp_room_ms": (probe_same.done_at - t_probe) * 1000,
                "other_nsp_room_ms": (probe_other.done_at - t_probe) * 1000,
            })
        await asyncio.sleep(args.gap_ms / 1000)  # let the loop go idle between messages

    messages = args.warmup + args.messages
    expected_writes = args.members * messages
    if big.writes != expected_writes:
        raise AssertionError(f"{big.writes} writes, expected {expected_writes}")
    fanouts = registry.get_sample_value(count_sample) or 0.0
    if fanouts < messages:  # every big-room message is timed; the 1-member probes sampled
        raise AssertionError(f"fan-out histogram counted {fanouts}, expected >= {messages}")
    for member in fanout.registry.members((nsp, ROOM)):  # release 100K objects now
        await fanout.leave((nsp, ROOM), member)
    for task in asyncio.all_tasks() - tasks_before:  # the row's feed tasks
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def col(key: str) -> list[float]:
        return [r[key] for r in rows]

    total = col("total_ms")
    return {
        "namespace": nsp,
        "durable": nsp in DURABLE,
        "batch": batch,
        "members": args.members,
        "messages": args.messages,
        "yields_per_message": (args.members - 1) // batch,
        "frame_bytes": frame_bytes,
        "join_s": join_s,
        "total_ms_p50": statistics.median(total),
        "total_ms_p90": pct(total, 0.9),
        "total_ms_max": max(total),
        "total_ms_mean": statistics.fmean(total),
        "per_member_us": statistics.median(total) * 1000 / args.members,
        "fanout_write_ms_p50": statistics.median(col("fanout_write_ms")),
        "flush_ms_p50": statistics.median(col("flush_ms")),
        "flush_share": statistics.fmean(col("flush_ms")) / statistics.fmean(total),
        "max_messages_per_s": 1000 / statistics.fmean(total),
        "heartbeat_worst_ms_p50": statistics.median(col("heartbeat_worst_ms")),
        "heartbeat_worst_ms_max": max(col("heartbeat_worst_ms")),
        "heartbeat_ticks_mean": statistics.fmean(col("heartbeat_ticks")),
        "gc_collections_total": sum(col("gc_collections")),
        "gc_full_total": sum(col("gc_full")),
        "gc_worst_pause_ms": max(col("gc_worst_pause_ms")),
        "same_nsp_room_ms_p50": statistics.median(col("same_nsp_room_ms")),
        "other_nsp_room_ms_p50": statistics.median(col("other_nsp_room_ms")),
        "other_nsp_room_ms_max": max(col("other_nsp_room_ms")),
        "per_message": rows,
    }


async def idle_lateness(heartbeat: Heartbeat, seconds: float) -> float:
    heartbeat.reset()
    await asyncio.sleep(seconds)
    return heartbeat.worst * 1000


def table(rows: list[dict[str, Any]], idle_ms: float) -> str:
    head = ("| namespace | batch | yields/msg | publish -> last write ms p50 (p90, max) "
            "| µs/member | Fanout.write ms | flush share | msgs/s at 100% of a core "
            "| heartbeat worst late ms p50 (max) | 1-member room, same nsp ms | other nsp ms p50 "
            "(max) | GC runs during fan-outs (worst pause ms) |")
    out = [head, "|" + "---|" * 12]
    for r in rows:
        out.append(
            f"| {r['namespace']} | {r['batch']:,} | {r['yields_per_message']} "
            f"| {r['total_ms_p50']:.1f} ({r['total_ms_p90']:.1f}, {r['total_ms_max']:.1f}) "
            f"| {r['per_member_us']:.2f} | {r['fanout_write_ms_p50']:.1f} "
            f"| {100 * r['flush_share']:.0f} % | {r['max_messages_per_s']:.1f} "
            f"| {r['heartbeat_worst_ms_p50']:.1f} ({r['heartbeat_worst_ms_max']:.1f}) "
            f"| {r['same_nsp_room_ms_p50']:.1f} "
            f"| {r['other_nsp_room_ms_p50']:.1f} ({r['other_nsp_room_ms_max']:.1f}) "
            f"| {r['gc_collections_total']} ({r['gc_worst_pause_ms']:.1f}) |"
        )
    out.append(f"\nidle heartbeat (no fan-out): worst lateness {idle_ms:.2f} ms "
               f"(the timer's own resolution on this loop)")
    return "\n".join(out)


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    heartbeat = Heartbeat(args.heartbeat_ms / 1000)
    heartbeat.start()
    gc.callbacks.append(GC)
    try:
        idle_ms = await idle_lateness(heartbeat, 0.5)
        rows: list[dict[str, Any]] = []
        for nsp in args.namespaces:
            for batch in args.batches:
                row = await run_row(nsp, batch, args, heartbeat)
                rows.append(row)
                print(f"  {nsp:<13} batch {batch:>7,}: publish -> last write "
                      f"p50 {row['total_ms_p50']:.1f} ms, {row['per_member_us']:.2f} µs/member, "
                      f"heartbeat worst {row['heartbeat_worst_ms_max']:.1f} ms, "
                      f"GC {row['gc_collections_total']} ({row['gc_full_total']} full), "
                      f"worst pause {row['gc_worst_pause_ms']:.1f} ms, "
                      f"frame {row['frame_bytes']} B (members joined in {row['join_s']:.1f} s)",
                      flush=True)
        print()
        print(table(rows, idle_ms))
        for row in rows:
            row["idle_heartbeat_worst_ms"] = idle_ms
        return rows
    finally:
        gc.callbacks.remove(GC)
        await heartbeat.stop()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="In-process 100K-member room fan-out.")
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=50, help="measured messages per row")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured messages first")
    parser.add_argument("--batches", default="500,2000,10000",
                        help="SB_FANOUT_BATCH values to compare (comma list)")
    parser.add_argument("--no-control", dest="control", action="store_false",
                        help="skip the no-yield control row (batch = members)")
    parser.add_argument("--namespaces", default="/chat,/live-updates")
    parser.add_argument("--text-bytes", type=int, default=100, help="message text length")
    parser.add_argument("--heartbeat-ms", type=float, default=5.0)
    parser.add_argument("--gap-ms", type=float, default=20.0, help="idle time between messages")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="hard bound")
    args = parser.parse_args(argv)
    args.batches = [int(b) for b in args.batches.split(",") if b.strip()]
    if args.control and args.members not in args.batches:
        args.batches.append(args.members)
    args.namespaces = [n.strip() for n in args.namespaces.split(",") if n.strip()]
    unknown = [n for n in args.namespaces if n not in NAMESPACES]
    if unknown:
        parser.error(f"unknown namespaces {unknown}")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)

    def on_alarm(_sig: int, _frame: FrameType | None) -> None:
        raise SystemExit(f"benchmark exceeded its {args.max_seconds:.0f} s bound")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.max_seconds))
    print(f"{args.members:,} members in one room; {args.messages} messages per row "
          f"(+{args.warmup} warm-up); heartbeat every {args.heartbeat_ms:g} ms; uvloop "
          f"{UVLOOP}, Python {platform.python_version()}", flush=True)
    started = time.perf_counter()
    rows = uvloop.run(main_async(args))
    signal.alarm(0)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / time.strftime("bigroom-%Y%m%dT%H%M%SZ.jsonl", time.gmtime())
    with path.open("w") as out:
        meta = {"type": "run", "args": vars(args), "python": platform.python_version(),
                "uvloop": UVLOOP, "cpus": os.cpu_count()}
        out.write(json.dumps(meta) + "\n")
        for row in rows:
            out.write(json.dumps({"type": "row", **row}) + "\n")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
