"""Engine.IO long-polling: session opens over polling and what forwarding costs, both targets
in one run.

A polling session's open, as socket.io-client does it with its defaults: the handshake GET
(open packet), a POST of ``40/chat,{"token"}``, the GET that brings the CONNECT reply, then a
POST of the close packet. ``--concurrency`` sessions in flight for ``--seconds``, with aiohttp
(one client process; its CPU is reported).

- **Switchboard** (2 gateways, nats-server): each session opens on one gateway and sends
  every later request to the *other* one, so all of them are forwarded to the owner over NATS
  (the worst case of a round-robin balancer); then a run with every request on the owner
  (what a sticky balancer would give). The difference in the POST's latency is the forwarding
  round trip.
- **Socket.IO 4.8** (2 Node processes + redis): it needs sticky sessions, so every request of
  a session goes to the process that opened it.

    .venv/bin/python bench/polling.py [--seconds 8] [--concurrency 50] [--targets switchboard,sio]

Results: bench/results/polling-<time>.jsonl and a table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchproc
from fanout import Recorder, Target, fmt_cpu, start_switchboard

TARGETS = ("switchboard", "sio")
TEXT = {"Content-Type": "text/plain;charset=UTF-8"}  # as socket.io-client sends its POSTs


class Run:
    def __init__(self) -> None:
        self.opened = 0
        self.failures = 0
        self.connect_ms: list[float] = []


async def one_session(http: aiohttp.ClientSession, first: str, rest: str, token: str,
                      run: Run) -> None:
    async with http.get(f"{first}/socket.io/?EIO=4&transport=polling") as response:
        body = await response.text()
    sid = orjson.loads(body[1:])["sid"]
    url = f"{rest}/socket.io/?EIO=4&transport=polling&sid={sid}"
    started = time.perf_counter()
    async with http.post(url, data=b'40/chat,{"token":"%s"}' % token.encode(),
                         headers=TEXT) as response:
        ok = await response.text() == "ok"
    run.connect_ms.append((time.perf_counter() - started) * 1000)
    async with http.get(url) as response:
        reply = await response.text()
    async with http.post(url, data=b"1", headers=TEXT) as response:
        await response.read()
    if ok and reply.startswith('40/chat,{"sid"'):
        run.opened += 1
    else:
        run.failures += 1


async def drive(urls: list[str], forward: bool, seconds: float, concurrency: int,
                tokens: list[str]) -> Run:
    run = Run()
    deadline = time.monotonic() + seconds
    counter = itertools.count()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        async def worker() -> None:
            while time.monotonic() < deadline:
                n = next(counter)
                first = urls[n % len(urls)]
                rest = urls[(n + 1) % len(urls)] if forward else first
                try:
                    await one_session(http, first, rest, tokens[n % len(tokens)], run)
                except (aiohttp.ClientError, KeyError, ValueError, TimeoutError):
                    run.failures += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return run


def measure(target: Target, forward: bool, args: argparse.Namespace, tokens: list[str],
            rec: Recorder, label: str) -> dict[str, Any]:
    urls = [u.replace("ws://", "http://") for u in target.urls]
    pids = {**target.pids, "client": os.getpid()}
    before = benchproc.snapshot(pids)
    started = time.monotonic()
    run = asyncio.run(drive(urls, forward, args.seconds, args.concurrency, tokens))
    elapsed = time.monotonic() - started
    cpu = benchproc.cpu_percent(before, benchproc.snapshot(pids))
    ms = sorted(run.connect_ms) or [0.0]
    result = {"label": label, "opens_per_s": round(run.opened / elapsed, 1),
              "failures": run.failures,
              "connect_post_p50_ms": round(statistics.median(ms), 2),
              "connect_post_p99_ms": round(ms[int(0.99 * (len(ms) - 1))], 2), "cpu": cpu}
    rec.write("measurement", **result)
    print(f"  {label:<34} {result['opens_per_s']:>8,.0f} opens/s  CONNECT POST p50 "
          f"{result['connect_post_p50_ms']} p99 {result['connect_post_p99_ms']} ms  failures "
          f"{run.failures}  {fmt_cpu(cpu)}", flush=True)
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--targets", default=",".join(TARGETS),
                        type=benchproc.comma_list(TARGETS))
    args = parser.parse_args(argv)
    jsonl, logs = benchproc.results_files("polling", None)
    logs.mkdir(parents=True, exist_ok=True)
    rec = Recorder(jsonl)
    secret = secrets.token_hex(32)
    now = int(time.time())
    tokens = [jwt.encode({"sub": f"poll-{n}", "exp": now + 3600}, secret, algorithm="HS256")
              for n in range(5000)]
    results: dict[str, dict[str, Any]] = {}
    for name in args.targets:
        with contextlib.ExitStack() as stack:
            if name == "switchboard":
                target = start_switchboard(stack, logs, secret, 2, {}, high_chat_limit=False)
                results["forwarded"] = measure(target, True, args, tokens, rec,
                                               "switchboard, all forwarded")
                results["owner"] = measure(target, False, args, tokens, rec,
                                           "switchboard, all on the owner")
            else:
                import peers

                target = peers.start_sio(stack, logs, secret, 2, args.seconds * 4 + 60)
                results["sio"] = measure(target, False, args, tokens, rec,
                                         "socket.io (sticky by construction)")
    if "sio" in results:
        for key in ("forwarded", "owner"):
            if key in results:
                ratio = results[key]["opens_per_s"] / max(results["sio"]["opens_per_s"], 1e-9)
                print(f"  switchboard ({key}) / socket.io = {ratio:.2f}x")
                rec.write("ratio", of=key, value=round(ratio, 3))
    if "forwarded" in results and "owner" in results:
        extra = (results["forwarded"]["connect_post_p50_ms"]
                 - results["owner"]["connect_post_p50_ms"])
        print(f"  forwarding adds {extra:.2f} ms to a POST's p50 (under this load)")
    print(f"results: {jsonl}")
    rec.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
