"""One bounded soak: senders and receivers on both gateways (directly and through delaying
relays), socket.io-client and the Python SDK inside the namespace, one socket.io-client sender
on the host; the :class:`~tests.netfault.faults.FaultPlan` runs for the soak's length, then
the senders stop, the link is clean, and every receiver must hold every message once, in
order. The report holds what was sent and delivered and how often the faults bit."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.netfault.faults import FaultPlan
from tests.netfault.metrics import gateway_counts
from tests.netfault.traffic import Publisher, Receiver, problems
from tests.support.jsclient import JsClients
from tests.support.timing import UNIT
from tests.support.tokens import make_token

NODE_OPTS = {"reconnection": True, "reconnectionDelay": 100, "reconnectionDelayMax": 1000,
             "randomizationFactor": 0.5}
SDK_OPTS = {"ack_timeout": 1.0, "retries": 2, "backoff_base": 0.1, "backoff_cap": 1.0,
            "connect_timeout": 3.0}


@dataclass
class Client:
    js: JsClients
    name: str
    url: str
    sdk: bool = False
    sends: bool = False


@dataclass
class SoakReport:
    seconds: float
    sent: int = 0
    resends: int = 0
    delivered: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    reconnects: Counter[str] = field(default_factory=Counter)
    sdk: Counter[str] = field(default_factory=Counter)
    gateways: dict[str, int] = field(default_factory=dict)
    faults: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        return (f"soak {self.seconds:.0f}s: {self.sent} messages sent ({self.resends} re-sends), "
                f"delivered {self.delivered}; faults {dict(self.faults)}; "
                f"client reconnects {dict(self.reconnects)}; sdk {dict(self.sdk)}; "
                f"gateways {self.gateways}; problems {self.problems or 'none'}")


def layout(host: JsClients, node: JsClients, sdk: JsClients, gateways: Sequence[str],
           relays: Sequence[str]) -> list[Client]:
    """Who connects where: every client receives; one per kind also sends."""
    g0, g1 = gateways
    r0, r1 = relays
    return [
        Client(host, "hs0", g0, sends=True),
        Client(node, "js0", g1, sends=True), Client(node, "j0", g0), Client(node, "j1", g1),
        Client(node, "j2", r0), Client(node, "j3", r1),
        Client(sdk, "ss0", r0, sdk=True, sends=True), Client(sdk, "s0", g1, sdk=True),
        Client(sdk, "s1", r1, sdk=True),
    ]


async def started(js: JsClients) -> None:
    """Wait until the process reads its commands (a loaded machine may take seconds to start
    node or Python): an emit for a client that does not exist answers ``failure``."""
    await js.emit("nobody", "ping")
    await js.expect("nobody", {"failure"}, within=60 * UNIT)


async def join_all(clients: Sequence[Client], rooms: Sequence[str]) -> None:
    for js in {id(c.js): c.js for c in clients}.values():
        await started(js)
    for c in clients:
        opts: dict[str, Any] = {"sdk": SDK_OPTS} if c.sdk else NODE_OPTS
        report = await c.js.connect(c.name, c.url, "/chat", make_token(f"nf-{c.name}"), **opts)
        assert report["type"] == "connect", f"{c.name}: {report}"
        for room in rooms:
            ack = await c.js.call(c.name, "room:join", {"room": room}, within=10 * UNIT)
            assert ack["ok"], f"{c.name} {room}: {ack}"


async def sdk_counters(clients: Sequence[Client]) -> Counter[str]:
    """Every SDK client's counters, summed (closing it: the soak is over)."""
    total: Counter[str] = Counter()
    for c in clients:
        if c.sdk:
            await c.js.close(c.name)
            total.update((await c.js.expect(c.name, {"counters"}))["counters"])
    return total


async def run_soak(plan: FaultPlan, clients: Sequence[Client], gateways: Sequence[str],
                   seconds: float, interval: float = 0.1) -> SoakReport:
    run = secrets.token_hex(4)
    rooms = [f"room:nf-{run}-a", f"room:nf-{run}-b"]
    await join_all(clients, rooms)
    receivers = [Receiver(c.js, c.name, "sdk" if c.sdk else "socket.io-client")
                 for c in clients]
    publishers = [Publisher(c.js, c.name, run, rooms, interval, ack_wait=2 * UNIT)
                  for c in clients if c.sends]
    tasks = [asyncio.create_task(x.run()) for x in (*receivers, *publishers)]
    report = SoakReport(seconds)
    try:
        await plan.run(seconds)
        for publisher in publishers:
            publisher.stop()
        await asyncio.wait_for(asyncio.gather(*tasks[len(receivers):]), 60 * UNIT)
        await settle(receivers, publishers, report)
        report.sdk = await sdk_counters(clients)
        report.gateways = await gateway_counts(gateways)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    report.faults = plan.done
    return report


async def settle(receivers: Sequence[Receiver], publishers: Sequence[Publisher],
                 report: SoakReport) -> None:
    """Wait for every receiver to catch up, give a duplicate the chance to show, then judge."""
    report.sent = sum(len(ids) for p in publishers for ids in p.acked.values())
    report.resends = sum(p.resends for p in publishers)
    for receiver in receivers:
        with contextlib.suppress(TimeoutError):
            await receiver.wait_for(report.sent, 30 * UNIT)
    await asyncio.sleep(1.0 * UNIT)
    for receiver in receivers:
        report.delivered[receiver.client] = receiver.count()
        report.reconnects.update(receiver.reconnects)
        report.problems.extend(problems(receiver, publishers))
        if not receiver.connected():
            report.problems.append(f"{receiver.client} not connected again; last reported: "
                                   f"{receiver.why[-4:]}")
