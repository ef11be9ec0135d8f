"""A TCP load balancer for the recovery benchmark: run N copies on one port (SO_REUSEPORT).

    python bench/balancer.py --port P --upstreams 127.0.0.1:8001,127.0.0.1:8002 [--active 1]

Each process listens on 127.0.0.1:P with SO_REUSEPORT, so the kernel spreads new client
connections over the N processes (a hash of the 4-tuple), and relays every accepted
connection byte for byte to one upstream (asyncio protocols on uvloop, two descriptors per
client). New connections go round-robin over the *active* upstreams: the first ``--active``
of the list that are not marked down. SIGUSR1 marks the first active upstream down (what a
health check does once a gateway dies or drains), so new connections go to the next ones;
pairs already open
are left alone and closed both ways when either end closes. When an upstream refuses the
connect, the next one of the whole list is tried, as a round-robin balancer with
retries does. With ``--hash-source`` the pick is by the client's source address instead
(HAProxy's ``balance source``): every connection of one address goes to the same upstream,
the stickiness Socket.IO's long-polling needs. Counters (accepted, relayed per upstream,
refused, failed) are printed as one JSON line on stdout at exit (SIGTERM/SIGINT, or
``--max-seconds``); ``READY <port>`` is printed once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import socket
import sys
from typing import Any, cast

HIGH_WATER = 256 * 1024  # bytes buffered towards one side before the other side is paused
LOW_WATER = 64 * 1024
BACKLOG = 4096


class Balancer:
    def __init__(self, upstreams: list[tuple[str, int]], active: int,
                 hash_source: bool = False) -> None:
        self.upstreams = upstreams
        self.hash_source = hash_source
        self.width = active  # how many healthy upstreams take new connections
        self.down: set[int] = set()
        self.active = self._healthy()
        self._next = 0
        self.pairs: set[ClientSide] = set()
        self.stats: dict[str, Any] = {"pid": os.getpid(), "accepted": 0, "refused": 0,
                                      "failed": 0, "switched": 0,
                                      "relayed": [0] * len(upstreams)}

    def _healthy(self) -> list[int]:
        return [i for i in range(len(self.upstreams)) if i not in self.down][:self.width]

    def mark_down(self) -> None:
        """The first active upstream is down: new connections go to the next healthy ones."""
        if len(self.down) < len(self.upstreams) - 1:
            self.down.add(self.active[0])
            self.active = self._healthy()
            self.stats["switched"] += 1

    def candidates(self, source: str = "") -> list[int]:
        """The pick among the active upstreams (round-robin, or by ``source`` when hashing),
        then every other one in order."""
        self._next += 1
        key = int(ipaddress.ip_address(source)) if self.hash_source and source else self._next
        first = self.active[key % len(self.active)]
        return [first] + [i for i in range(len(self.upstreams)) if i != first]


class Side(asyncio.Protocol):
    """One end of a pair; ``peer`` is the transport it forwards to."""

    transport: asyncio.Transport
    peer: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.set_write_buffer_limits(HIGH_WATER, LOW_WATER)

    def data_received(self, data: bytes) -> None:
        if self.peer is not None:
            self.peer.write(data)

    def eof_received(self) -> bool:
        return False  # close this side; connection_lost closes the other

    def pause_writing(self) -> None:  # our transport is full: stop reading the other side
        if self.peer is not None:
            self.peer.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            self.peer.close()  # flushes what is buffered (a 1012 close frame) first


class UpstreamSide(Side):
    pass


class ClientSide(Side):
    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer
        self.up: UpstreamSide | None = None
        self.closed = False
        self.early: list[bytes] = []  # what the client sent before the upstream was up

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.balancer.stats["accepted"] += 1
        self.balancer.pairs.add(self)
        asyncio.get_running_loop().create_task(self.open())

    def data_received(self, data: bytes) -> None:
        if self.peer is None:  # (uvloop starts reading after connection_made whatever it did)
            self.early.append(data)
            self.transport.pause_reading()
        else:
            self.peer.write(data)

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        source = (self.transport.get_extra_info("peername") or ("",))[0]
        for index in self.balancer.candidates(source):
            host, port = self.balancer.upstreams[index]
            try:
                _, up = await loop.create_connection(UpstreamSide, host, port)
            except OSError:
                self.balancer.stats["refused"] += 1
                continue
            if self.closed:  # the client left while we connected
                up.transport.close()
                return
            self.balancer.stats["relayed"][index] += 1
            self.up, up.peer, self.peer = up, self.transport, up.transport
            if self.early:
                up.transport.write(b"".join(self.early))
                self.early.clear()
            self.transport.resume_reading()
            return
        self.balancer.stats["failed"] += 1
        self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.balancer.pairs.discard(self)
        super().connection_lost(exc)


def listening_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(BACKLOG)
    sock.setblocking(False)
    return sock


async def serve(args: argparse.Namespace) -> dict[str, Any]:
    upstreams = []
    for item in args.upstreams.split(","):
        host, port = item.rsplit(":", 1)
        upstreams.append((host, int(port)))
    balancer = Balancer(upstreams, max(1, min(args.active, len(upstreams))), args.hash_source)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, balancer.mark_down)
    server = await loop.create_server(lambda: ClientSide(balancer), sock=listening_socket(
        args.port), backlog=BACKLOG)
    print(f"READY {args.port}", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), args.max_seconds)
    server.close()
    for pair in list(balancer.pairs):
        pair.transport.abort()
        if pair.peer is not None:
            pair.peer.abort()
    return balancer.stats


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstreams", required=True, help="host:port,host:port,...")
    parser.add_argument("--active", type=int, default=1,
                        help="how many upstreams, from the first, take new connections at "
                             "start (SIGUSR1 drops the first of them)")
    parser.add_argument("--hash-source", action="store_true",
                        help="pick the upstream by the client's source address, not round-robin")
    parser.add_argument("--max-seconds", type=float, default=600.0,
                        help="exit by itself after this long whatever happens")
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        stats = asyncio.run(serve(args))
    else:
        stats = uvloop.run(serve(args))
    print(json.dumps({"event": "stats", **stats}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
