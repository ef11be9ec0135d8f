"""NATS round trips per connection life, counted inside one gateway.

A gateway runs in this process (``gateway.server.run``, real nats-server, uvloop) with its
NATS client wrapped by a counter: every PUB that carries a reply subject (a request: KV reads
and writes, JetStream publishes, log probes), every flush (a PING/PONG), every fire-and-forget
PUB and every SUB/UNSUB, each under a category named by its subject. ``--lives`` connection
lives then run against it, ``--concurrency`` at a time, each = upgrade with the token in
``Authorization: Bearer``, open packet, ``40/chat,{"token":...}`` -> the CONNECT reply (with
``--rooms N``: then ``room:join`` of one of N rooms -> its ack), close;
the counters are read once every socket is gone and the gateway's background writes settled.
The liveness beat and the session lease are not part of a life and are listed apart.

    .venv/bin/python bench/roundtrips.py [--lives 200] [--concurrency 1]

Why in-process: nats-server's /connz counts messages but not PINGs, and cannot tell a KV read
from a KV write; the counter here sees exactly what the gateway asked of NATS.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import jwt
import uvloop
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchproc import free_port

from devcluster.natsserver import NatsServer
from gateway import server as gateway_server
from gateway.nats_client import FanoutClient
from shared.config import GatewaySettings, load

BACKGROUND = ("liveness", "gateway start")


def category(subject: str) -> str:
    """A short name for what a subject is for (keys and rooms left out)."""
    parts = subject.split(".")
    if subject.startswith("$KV."):
        return f"kv write {parts[1]}"
    if subject.startswith("$JS.API.DIRECT.GET."):
        return f"direct get {parts[4]}"
    if subject.startswith("$JS.API."):
        return f"js api {'.'.join(parts[2:4])} {parts[4] if len(parts) > 4 else ''}".strip()
    if subject.startswith("_INBOX."):
        return "inbox"
    return ".".join(parts[:2]) + (".*" if len(parts) > 2 else "")


class CountingClient(FanoutClient):
    """The gateway's client, counting what it asks of the server."""

    counts: ClassVar[collections.Counter[str]] = collections.Counter()

    async def publish(self, subject: str, payload: bytes = b"", reply: str = "",
                      headers: dict[str, Any] | None = None) -> None:
        kind = "request" if reply else "publish"
        name = category(subject)
        if name.startswith("kv write") and name.endswith("-gateways"):
            name = "liveness"
        self.counts[f"{kind}: {name}"] += 1
        await super().publish(subject, payload, reply=reply, headers=headers)

    def publish_nowait(self, subject: str, payload: bytes, reply: bytes = b"",
                       headers: bytes | None = None) -> None:
        name = category(subject)
        if name == "inbox" and not reply:
            self.counts["barrier (echo from own inbox)"] += 1
        else:
            self.counts[f"{'request' if reply else 'publish'}: {name}"] += 1
        super().publish_nowait(subject, payload, reply, headers)

    async def flush(self, timeout: int = 2) -> None:  # noqa: ASYNC109 - nats-py's signature
        self.counts["flush (PING/PONG)"] += 1
        await super().flush(timeout)

    async def _send_subscribe(self, sub: Any) -> None:
        self.counts[f"sub: {category(sub.subject)}"] += 1
        await super()._send_subscribe(sub)

    async def _send_unsubscribe(self, sid: int, limit: int = 0) -> None:
        self.counts["unsub"] += 1
        await super()._send_unsubscribe(sid, limit)


async def life(url: str, token: str, room: str | None) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with websockets.connect(f"{url}/socket.io/?EIO=4&transport=websocket",
                                  additional_headers=headers, compression=None) as ws:
        opened = await ws.recv()
        assert isinstance(opened, str) and opened.startswith("0"), opened
        await ws.send(f'40/chat,{{"token":"{token}"}}')
        reply = await ws.recv()
        assert isinstance(reply, str) and reply.startswith("40/chat,{"), reply
        if room is not None:
            await ws.send(f'42/chat,1["room:join",{{"room":"{room}"}}]')
            while True:  # presence frames of the room may come first
                ack = await ws.recv()
                if isinstance(ack, str) and ack.startswith("43/chat,1["):
                    assert '"ok":true' in ack, ack
                    break


async def main(args: argparse.Namespace) -> int:
    secret = secrets.token_hex(16)
    tag = secrets.token_hex(3)
    now = int(time.time())
    tokens = [jwt.encode({"sub": f"rt-{tag}-{n}", "exp": now + 3600}, secret, "HS256")
              for n in range(args.lives)]
    with NatsServer() as nats:
        port = free_port()
        settings = load(GatewaySettings, {
            **os.environ, "SB_HOST": "127.0.0.1", "SB_PORT": str(port),
            "SB_NATS_URL": nats.url, "SB_JWT_SECRET": secret, "SB_LOG_LEVEL": "WARNING",
            "SB_INSTANCE_ID": f"rt-{tag}"})
        setattr(gateway_server, "FanoutClient", CountingClient)  # noqa: B010 - a stand-in
        holder: list[Any] = []
        original = gateway_server.Gateway

        class Recorded(original):  # type: ignore[misc, valid-type]
            def __init__(self, *a: Any, **kw: Any) -> None:
                super().__init__(*a, **kw)
                holder.append(self)

        gateway_server.Gateway = Recorded  # type: ignore[misc]
        stop = asyncio.Event()
        task = asyncio.get_running_loop().create_task(gateway_server.run(settings, stop))
        url = f"ws://127.0.0.1:{port}"
        for _ in range(600):
            if holder and holder[0].server is not None:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        before = collections.Counter(CountingClient.counts)
        gate = asyncio.Semaphore(args.concurrency)

        async def one(n: int, token: str) -> None:
            room = f"room:rt-{n % args.rooms}" if args.rooms else None
            async with gate:
                await life(url, token, room)

        started = time.perf_counter()
        await asyncio.gather(*(one(n, t) for n, t in enumerate(tokens)))
        elapsed = time.perf_counter() - started
        while holder[0].connections:  # noqa: ASYNC110 - the gateway has no event for it
            await asyncio.sleep(0.05)
        await asyncio.sleep(args.settle)
        delta = CountingClient.counts - before
        stop.set()
        await task
    lives = args.lives
    print(f"{lives} lives, {args.concurrency} at a time, {elapsed:.2f} s"
          + (f", each joining one of {args.rooms} rooms" if args.rooms else ""))
    print("| what | per life |\n|---|---:|")
    trips = 0.0
    for name, count in sorted(delta.items()):
        per = count / lives
        background = any(b in name for b in BACKGROUND)
        if not background and name.startswith(("request", "flush", "barrier")):
            trips += per
        print(f"| {name}{' (background, not a life)' if background else ''} | {per:.2f} |")
    print(f"\nround trips per connection life (requests + flushes): {trips:.2f}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--lives", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--rooms", type=int, default=0,
                        help="each life also joins one of this many rooms (S2's join), acked")
    parser.add_argument("--settle", type=float, default=1.5,
                        help="seconds to wait for background writes after the last close")
    sys.exit(uvloop.run(main(parser.parse_args())))
