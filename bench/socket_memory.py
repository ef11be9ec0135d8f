"""What one idle socket costs the gateway in Python objects, by the line that allocated them.

RSS per connection (``memory.py``, ``idle_memory.py``) says how much; this says where. A
gateway runs in this process (``gateway.server.run``, a real nats-server, uvloop) and a child
process holds ``--sockets`` idle connections to it, each with its own JWT, its ``/chat``
CONNECT acked and one of ten rooms joined (S2's socket). ``tracemalloc`` snapshots the
gateway before and after the sockets open; the growth is grouped by the innermost allocating
frame (with the two frames above it) and divided by the sockets. A first batch of 50 opens
before the first snapshot, so rooms, caches and code paths warmed once are not counted.

    .venv/bin/python bench/socket_memory.py [--sockets 2000] [--top 25]

Tracing slows the gateway several-fold; NATS requests may time out while the sockets open
(the gateway logs them), which changes nothing counted here. Kernel socket buffers and
memory outside Python's allocator (uvloop's native handles) are not in these figures.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import secrets
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import jwt
import uvloop
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from devcluster.natsserver import NatsServer
from gateway import server as gateway_server
from shared.config import GatewaySettings, load

WARM = 50
ROOMS = 10


async def hold(url: str, tokens: list[str]) -> None:
    """The child: open every socket, join its room, say READY, answer pings until stdin ends."""
    gate = asyncio.Semaphore(50)
    sockets: list[websockets.ClientConnection] = []

    async def one(n: int, token: str) -> None:
        async with gate:
            ws = await websockets.connect(
                f"{url}/socket.io/?EIO=4&transport=websocket", compression=None,
                additional_headers={"Authorization": f"Bearer {token}"}, ping_interval=None)
            await ws.recv()
            await ws.send("40/chat,")
            reply = await ws.recv()
            assert isinstance(reply, str) and reply.startswith("40/chat,{"), reply
            await ws.send(f'42/chat,1["room:join",{{"room":"room:mem-{n % ROOMS}"}}]')
            while not str(ack := await ws.recv()).startswith("43/chat,1["):
                pass  # presence frames of the room may come first
            assert '"ok":true' in str(ack), ack
            sockets.append(ws)

    async def pong(ws: websockets.ClientConnection) -> None:
        async for frame in ws:
            if frame == "2":
                await ws.send("3")

    await asyncio.gather(*(one(n, t) for n, t in enumerate(tokens)))
    pongs = [asyncio.create_task(pong(ws)) for ws in sockets]
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for task in pongs:
        task.cancel()


async def open_sockets(url: str, tokens: list[str]) -> asyncio.subprocess.Process:
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--hold", url, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write((" ".join(tokens) + "\n").encode())
    await child.stdin.drain()
    line = await child.stdout.readline()
    if not line.startswith(b"READY"):
        raise SystemExit(f"the socket holder failed: {line!r}")
    return child


def site(trace: tracemalloc.Traceback) -> str:
    frames = list(trace)[::-1][:3]  # innermost first
    return " <- ".join(f"{'/'.join(f.filename.split('/')[-2:])}:{f.lineno}" for f in frames)


async def main(args: argparse.Namespace) -> int:
    secret = secrets.token_hex(16)
    expires = int(time.time()) + 3600
    tokens = [jwt.encode({"sub": f"mem-{n}", "exp": expires}, secret, "HS256")
              for n in range(WARM + args.sockets)]
    with NatsServer() as nats:
        port = 18000 + secrets.randbelow(2000)
        settings = load(GatewaySettings, {
            **os.environ, "SB_HOST": "127.0.0.1", "SB_PORT": str(port), "SB_NATS_URL": nats.url,
            "SB_JWT_SECRET": secret, "SB_LOG_LEVEL": "ERROR", "SB_INSTANCE_ID": "mem"})
        stop = asyncio.Event()
        gateway = asyncio.get_running_loop().create_task(gateway_server.run(settings, stop))
        url = f"ws://127.0.0.1:{port}"
        children = []
        try:
            await asyncio.sleep(3.0)
            children.append(await open_sockets(url, tokens[:WARM]))
            gc.collect()
            tracemalloc.start(3)
            before = tracemalloc.take_snapshot()
            children.append(await open_sockets(url, tokens[WARM:]))
            await asyncio.sleep(2.0)
            gc.collect()
            after = tracemalloc.take_snapshot()
            tracemalloc.stop()
        finally:
            for child in children:
                child.kill()
                await child.wait()
            stop.set()
            await gateway
    sizes: collections.Counter[str] = collections.Counter()
    blocks: collections.Counter[str] = collections.Counter()
    for stat in after.compare_to(before, "traceback"):
        sizes[site(stat.traceback)] += stat.size_diff
        blocks[site(stat.traceback)] += stat.count_diff
    n = args.sockets
    print(f"{n:,} idle /chat sockets, each joined to one of {ROOMS} rooms: "
          f"{sum(sizes.values()) / n:,.0f} B of Python objects per socket")
    print("| bytes per socket | blocks per socket | allocated at (innermost first) |")
    print("|---:|---:|---|")
    for where, size in sizes.most_common(args.top):
        print(f"| {size / n:,.0f} | {blocks[where] / n:.2f} | `{where}` |")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--hold":
        asyncio.run(hold(sys.argv[2], sys.stdin.readline().split()))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25, help="allocation sites listed")
    sys.exit(uvloop.run(main(parser.parse_args())))
