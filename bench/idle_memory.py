"""Server memory per idle connection and CPU per upgrade, for one gateway and the raw server.

What a held socket costs decides how many one gateway can carry (S2 in perf-diagnosis.md), and
the upgrade's CPU is the part of a handshake the transport layer owns. Both are read from the
server process itself (``VmRSS`` and CPU ticks in ``/proc``), with a deliberately thin client
(asyncio streams, frames built by hand) so the client's own cost never shows up in them:

1. upgrades: ``--upgrades`` times upgrade, read the open packet, close the TCP connection,
   ``--concurrency`` in flight -> server CPU ms per upgrade;
2. idle: ``--connections`` sockets upgrade (JWT in ``Authorization: Bearer``), CONNECT to
   ``/chat`` and stay open -> (RSS after - RSS before) / connections.

The same client runs against ONE gateway (with its nats-server) and the raw ``websockets``
server (bench/raw_ws_server.py), in one run.

    .venv/bin/python bench/idle_memory.py [--connections 5000] [--upgrades 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchproc import Child, free_port, mint_tokens, process_ticks, wait_http_ok
from fanout import start_raw

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
PATH = "/socket.io/?EIO=4&transport=websocket"


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def masked_text(text: str) -> bytes:
    payload = text.encode()
    mask = secrets.token_bytes(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    if len(payload) < 126:
        return struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + body
    return struct.pack("!BBH", 0x81, 0x80 | 126, len(payload)) + mask + body


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(2)
    length = head[1] & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", await reader.readexactly(8))
    return await reader.readexactly(length)


async def upgrade(port: int, token: str | None) -> tuple[asyncio.StreamReader,
                                                         asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    writer.write((f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  f"Sec-WebSocket-Version: 13\r\n{auth}\r\n").encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(head.decode(errors="replace"))
    opened = await read_frame(reader)
    if not opened.startswith(b"0{"):
        raise RuntimeError(f"open packet {opened!r}")
    return reader, writer


async def upgrades(port: int, count: int, concurrency: int) -> None:
    left = iter(range(count))

    async def worker() -> None:
        for _ in left:
            _, writer = await upgrade(port, None)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def hold(port: int, tokens: list[str], concurrency: int,
               held: list[asyncio.StreamWriter]) -> None:
    left = iter(tokens)

    async def worker() -> None:
        for token in left:
            reader, writer = await upgrade(port, token)
            writer.write(masked_text("40/chat,"))
            reply = await read_frame(reader)
            if not reply.startswith(b'40/chat,{"sid"'):
                raise RuntimeError(f"CONNECT reply {reply!r}")
            held.append(writer)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def cpu_ms(pid: int, before: int) -> float:
    after = process_ticks(pid) or 0
    return (after - before) * 1000 / TICKS_PER_S


async def measure(name: str, port: int, pid: int, tokens: list[str],
                  args: argparse.Namespace) -> None:
    warm: list[asyncio.StreamWriter] = []
    await hold(port, tokens[:50], 10, warm)  # first-use allocations are not per socket
    for writer in warm:
        writer.close()
    await asyncio.sleep(1.0)
    ticks = process_ticks(pid) or 0
    started = time.monotonic()
    await upgrades(port, args.upgrades, args.concurrency)
    elapsed = time.monotonic() - started
    per_upgrade = cpu_ms(pid, ticks) / args.upgrades
    await asyncio.sleep(1.0)
    rss_before = rss_bytes(pid)
    held: list[asyncio.StreamWriter] = []
    ticks = process_ticks(pid) or 0
    await hold(port, tokens[50:50 + args.connections], args.concurrency, held)
    per_connect = cpu_ms(pid, ticks) / args.connections
    await asyncio.sleep(2.0)
    rss_after = rss_bytes(pid)
    per_socket = (rss_after - rss_before) / len(held)
    print(f"  {name:<11} upgrades {args.upgrades / elapsed:8,.0f}/s  server CPU "
          f"{per_upgrade:.3f} ms/upgrade | {len(held)} idle in /chat: RSS "
          f"{rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB = {per_socket:,.0f} B/socket, "
          f"{per_connect:.3f} ms CPU/connect", flush=True)
    for writer in held:
        writer.close()
    await asyncio.sleep(1.0)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--upgrades", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args(argv)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    logs = RESULTS / f"idle-memory-{stamp}-logs"
    logs.mkdir(parents=True)
    secret = secrets.token_hex(32)
    token_file = logs / "tokens.txt"
    mint_tokens(token_file, secret, args.connections + 50, f"idle-{secrets.token_hex(3)}")
    tokens = token_file.read_text().split()
    with contextlib.ExitStack() as stack:
        from devcluster.natsserver import NatsServer

        nats = stack.enter_context(NatsServer())
        port = free_port()
        env = {**os.environ, "SB_HOST": "127.0.0.1", "SB_PORT": str(port),
               "SB_INSTANCE_ID": "bench-idle-gw", "SB_NATS_URL": nats.url,
               "SB_JWT_SECRET": secret, "SB_LOG_LEVEL": "WARNING",
               "SB_PING_INTERVAL_MS": "600000"}
        gateway = Child("gateway", [sys.executable, "-m", "gateway"], logs / "gateway.log",
                        env=env, cwd=REPO)
        stack.callback(gateway.stop)
        wait_http_ok(f"http://127.0.0.1:{port}/readyz", gateway, timeout=60)
        asyncio.run(measure("switchboard", port, gateway.pid, tokens, args))
        raw = start_raw(stack, logs, 600)
        raw_port = int(raw.urls[0].rsplit(":", 1)[1])
        asyncio.run(measure("raw", raw_port, raw.pids["raw-server"], tokens, args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
