"""In-process cost of the S1 fan-out path, without sockets: CPU per message and per delivery.

The real receive side of a gateway (``MemoryBroker`` -> the namespace's ordered ``Feed`` ->
``Writer.write`` -> each ``Member`` -> ``Outbox`` -> ``Flusher`` -> ``transport.write``) with
fake transports that count writes, shaped like S1 on one gateway: 10 rooms of 50 local
members, every member recovering (offsets on). Messages arrive in bursts of ``--burst`` per
loop pass (what a NATS read hands over at load), so frames per write shows the coalescing.
CPU time (``time.process_time``) is used, so a busy machine changes the figure little.

    .venv/bin/python bench/hotpath.py [--messages 20000] [--burst 10] [--nsp /chat]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import cast

import orjson
import uvloop
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.delivery import Member
from gateway.fanout import Fanout
from gateway.memory_broker import MemoryBroker, MemoryBus
from gateway.outbox import Flusher, Outbox
from shared.metrics import GatewayMetrics

DURABLE = frozenset({"/chat", "/notifications"})


class CountingTransport:
    __slots__ = ("bytes", "writes")

    def __init__(self) -> None:
        self.writes = 0
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.bytes += len(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False


async def run(args: argparse.Namespace) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    broker = MemoryBroker(MemoryBus(DURABLE))
    fanout = Fanout(broker, GatewayMetrics(CollectorRegistry()), 2000, DURABLE)
    flusher = Flusher(loop)
    transports = []
    for room in range(args.rooms):
        for _ in range(args.members):
            transport = CountingTransport()
            transports.append(transport)
            outbox = Outbox(cast(asyncio.WriteTransport, transport), flusher, 1 << 30,
                            lambda: None)
            await fanout.join((args.nsp, f"room:bench-{room}"), Member(outbox, offsets=True))
    pad = "x" * 64
    bodies = [orjson.dumps(["message:received", {
        "room": f"room:bench-{n % args.rooms}", "id": f"m-{n}", "from": "bench-1",
        "text": f"P{n}:{pad}", "ts": int(time.time() * 1000)}]) for n in range(args.burst)]
    logged = args.nsp in DURABLE
    rounds = args.messages // args.burst
    await asyncio.sleep(0)
    started = time.process_time()
    for n in range(rounds):
        for i, body in enumerate(bodies):
            await broker.publish(args.nsp, f"room:bench-{i % args.rooms}", body,
                                 f"{n}-{i}", logged=logged)
        for _ in range(4):
            await asyncio.sleep(0)
    for _ in range(20):
        await asyncio.sleep(0)
    spent = time.process_time() - started
    messages = rounds * args.burst
    deliveries = messages * args.members
    writes = sum(t.writes for t in transports)
    return {"messages": messages, "deliveries": deliveries,
            "us_per_message": spent / messages * 1e6,
            "us_per_delivery": spent / deliveries * 1e6,
            "deliveries_per_cpu_s": deliveries / spent,
            "frames_per_write": deliveries / writes if writes else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--nsp", default="/chat")
    args = parser.parse_args()
    result = uvloop.run(run(args))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
