"""What announcing presence costs while one room fills, for several big-room thresholds.

``--members`` users join one room of ``/chat`` at ``--rate`` joins/s (one socket each). The
presence service's own state (``presence.state.PresenceState``, the pure core every replica
runs, with the shipped grace and summary interval) decides what is announced; every event goes
to the room's current members, so the frames the gateways write (and the clients parse) are
the events times the audience at that moment. The gateway's cost of one such frame is measured
on the real fan-out (``gateway.delivery.Writer.write`` of a ``presence:update`` to a room of the
final size, members with in-memory outboxes, as bench/hotpath.py does): µs per message and
per member delivery, so the fill's fan-out CPU = messages x per-message + frames x
per-delivery. Deterministic counts; only the per-frame timing depends on the box.

    .venv/bin/python bench/presence_fill.py [--members 1000] [--rate 250]
        [--thresholds 100,200,500,1000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gateway.delivery import Member
from gateway.fanout import Fanout
from gateway.memory_broker import MemoryBroker, MemoryBus
from presence.state import Conn as Record
from presence.state import PresenceConfig, PresenceState, RoomChange, RoomCount, UserStatus
from shared import envelope
from shared.metrics import GatewayMetrics

ROOM = "/chat room:fill"


def fill(members: int, rate: float, threshold: int) -> dict[str, Any]:
    """Counts of events and member deliveries while ``members`` join at ``rate``/s."""
    config = PresenceConfig(big_room=threshold)
    state = PresenceState(config=config)
    counts = {"joined": 0, "online": 0, "count": 0}
    messages = frames = 0
    inside = 0
    now = 0.0

    def announce(events: list[Any]) -> None:
        nonlocal messages, frames
        for event in events:
            kind: str
            if isinstance(event, RoomChange | UserStatus):
                kind = event.status
            elif isinstance(event, RoomCount):
                kind = "count"
            else:
                continue
            if isinstance(event, UserStatus) and ROOM not in event.rooms:
                continue  # announced to the user's other rooms only
            counts[kind] = counts.get(kind, 0) + 1
            messages += 1
            frames += inside

    for n in range(members):
        now = n / rate
        deadline = state.next_deadline()
        while deadline is not None and deadline <= now:
            announce(state.tick(deadline))
            deadline = state.next_deadline()
        inside += 1  # the joiner hears its own join
        announce(state.merge({("gw", f"c{n}"): Record(f"u{n}", frozenset({ROOM}), True, now, 1)},
                             now))
    end = now + 2 * config.summary_interval
    deadline = state.next_deadline()
    while deadline is not None and deadline <= end:
        announce(state.tick(deadline))
        deadline = state.next_deadline()
    return {"threshold": threshold, "members": members, "messages": messages,
            "frames": frames, "frames_per_member": round(frames / members, 1),
            "by_kind": counts}


class NullOutbox:
    """Takes frames like an :class:`~gateway.outbox.Outbox` and drops them."""

    queued = 0

    def push(self, frame: bytes) -> bool:
        return True


async def fanout_cost(members: int, repeats: int) -> tuple[float, float]:
    """(µs per message, µs per member delivery) of one presence:update on the real fan-out."""
    bus = MemoryBus(frozenset({"/chat"}))
    fanout = Fanout(MemoryBroker(bus), GatewayMetrics(CollectorRegistry()), batch=2000,
                    durable=frozenset({"/chat"}))
    body = envelope.pack(orjson.dumps(["presence:update", {"room": "room:fill", "user": "u1",
                                                           "status": "joined"}]), ())

    async def per_message(size: int) -> float:
        key = ("/live-updates", f"room:fill-{size}")
        for _ in range(size):
            await fanout.join(key, Member(NullOutbox(), offsets=False))  # type: ignore[arg-type]
        writer = fanout.feed(key[0]).writer
        started = time.perf_counter()
        for _ in range(repeats):
            await writer.write(key[1], body, None, 0, None)
        return (time.perf_counter() - started) / repeats * 1e6

    one = await per_message(1)
    many = await per_message(members)
    return one, (many - one) / max(1, members - 1)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=250.0, help="joins per second")
    parser.add_argument("--thresholds", default="100,200,500,1000")
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args(argv)
    per_message, per_delivery = asyncio.run(fanout_cost(args.members, args.repeats))
    print(f"fan-out of one presence:update: {per_message:.1f} µs per message + "
          f"{per_delivery:.2f} µs per member delivery (room of {args.members})")
    print(f"\n{args.members} members join one room at {args.rate:g}/s\n")
    print("| big-room threshold | messages | frames to members | per member | "
          "joined / online / count | fan-out CPU of the fill |")
    print("|---:|---:|---:|---:|---|---:|")
    for threshold in (int(t) for t in args.thresholds.split(",")):
        r = fill(args.members, args.rate, threshold)
        cpu_ms = (r["messages"] * per_message + r["frames"] * per_delivery) / 1000
        k = r["by_kind"]
        print(f"| {threshold:,} | {r['messages']:,} | {r['frames']:,} | "
              f"{r['frames_per_member']} | {k['joined']:,} / {k['online']:,} / {k['count']:,} | "
              f"{cpu_ms:,.0f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
