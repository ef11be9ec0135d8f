"""The application worker of the hooks benchmark: raw nats-py against the wire contract only
(docs/hooks.md), so the figure does not depend on the worker SDK.

It joins the queue group ``--queue`` on the namespace's two subjects and answers

- the connect hook (``<prefix>.hook.<ns>.connect``; asked because the namespace has
  ``auth = "jwt"`` and ``hooks = true``): ``{"ok": true}``, the token already decided;
- ``order:place`` (``<prefix>.hook.<ns>.event.order=3Aplace``, the event's subject token):
  ``{"ok": true, "ack": [{"ok": true, "id": <the order's id>}]}``, or the typed error
  ``bad_request`` when the first argument has no string ``id``.

    python bench/hook_worker.py --nats nats://127.0.0.1:4222 [--prefix sb] [--namespace bench]

Prints ``READY {"pid": N}`` once subscribed (and flushed, so the server knows the queue
member); on SIGTERM it prints ``DONE {"events": N, "connects": M}`` on stderr and exits, and
it exits by itself after ``--max-seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from typing import Any

import nats
import orjson
import uvloop

EVENT_TOKEN = "order=3Aplace"  # "order:place": ':' is byte 0x3A, outside [A-Za-z0-9_-]
BAD_REQUEST = orjson.dumps({"ok": False, "error": {
    "code": "bad_request", "message": "order:place takes {id, qty}"}})
CONNECT_OK = orjson.dumps({"ok": True})


def answer(body: bytes) -> bytes:
    """The reply to one ``order:place`` request body (pure: the benchmark's whole worker)."""
    try:
        request = orjson.loads(body)
        order = request["args"][0]
        order_id = order["id"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return BAD_REQUEST
    if not isinstance(order_id, str):
        return BAD_REQUEST
    return orjson.dumps({"ok": True, "ack": [{"ok": True, "id": order_id}]})


async def serve(args: argparse.Namespace) -> dict[str, int]:
    counts = {"events": 0, "connects": 0}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.call_later(args.max_seconds, stop.set)
    nc = await nats.connect(args.nats, name=f"bench-hook-worker-{os.getpid()}")

    async def on_event(msg: Any) -> None:
        counts["events"] += 1
        await msg.respond(answer(msg.data))

    async def on_connect(msg: Any) -> None:
        counts["connects"] += 1
        await msg.respond(CONNECT_OK)

    base = f"{args.prefix}.hook.{args.namespace}"
    await nc.subscribe(f"{base}.event.{EVENT_TOKEN}", queue=args.queue, cb=on_event,
                       pending_msgs_limit=1_000_000)
    await nc.subscribe(f"{base}.connect", queue=args.queue, cb=on_connect)
    await nc.flush()
    sys.stdout.write(f"READY {orjson.dumps({'pid': os.getpid()}).decode()}\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await nc.drain()
    return counts


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nats", required=True, help="the NATS URL (loopback)")
    parser.add_argument("--prefix", default="sb", help="SB_SUBJECT_PREFIX of the gateways")
    parser.add_argument("--namespace", default="bench",
                        help="the namespace's subject token (its name without the '/')")
    parser.add_argument("--queue", default="bench-workers", help="the queue group")
    parser.add_argument("--max-seconds", type=float, default=600.0)
    args = parser.parse_args(argv)
    counts = uvloop.run(serve(args))
    sys.stderr.write(f"DONE {orjson.dumps(counts).decode()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
