"""Choosing a base port whose devcluster ports are all free, for the tests and tools that
start a devcluster of their own beside others.

The ports come from the layout itself (:func:`devcluster.layout.plan`), so a port devcluster
derives from the base (the balancer's, a gateway's, the demo page's) is never missed. Bases
are drawn below Linux's ephemeral range, where the kernel hands out no client ports.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterable

from devcluster.layout import HOST, Options, plan

LOW, HIGH = 20_000, 32_000


def bindable(port: int, host: str = HOST) -> bool:
    """Whether ``port`` binds now, with ``SO_REUSEADDR`` as the servers bind (so a TIME_WAIT
    left by an earlier run does not count as in use)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_base_port(gateways: int, extra_offsets: Iterable[int] = (),
                   attempts: int = 100) -> int:
    """A base port whose layout for ``gateways`` gateways, plus base+each of
    ``extra_offsets``, is free now; ``RuntimeError`` after ``attempts`` draws."""
    extra = tuple(extra_offsets)
    for _ in range(attempts):
        base = random.randrange(LOW, HIGH)
        ports = plan(Options(gateways=gateways, base_port=base), 0, 0).fixed_ports
        if all(bindable(port) for port in (*ports, *(base + offset for offset in extra))):
            return base
    raise RuntimeError("no base port with all its devcluster ports free")
