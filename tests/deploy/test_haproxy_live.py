"""The compose load balancer as it ships, run for real in front of two gateways.

deploy/lb/haproxy.cfg is started with Debian's haproxy; only what Docker would provide is
swapped (the listening addresses, and the gateways' addresses for the DNS server template).
It has no stickiness, so socket.io-client's default options (long-polling, then the upgrade)
spread one session's requests over both gateways: they forward polls to the owner and take
the session over on the upgrade, and messages reach the client once and in order.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devcluster.natsserver import free_ports
from tests.deploy.files import HAPROXY
from tests.integration.test_polling import metric
from tests.integration.test_polling_takeover import metrics_of
from tests.support.jsclient import JsClients
from tests.support.processes import Service
from tests.support.timing import UNIT
from tests.support.tokens import make_token

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("haproxy") is None,
                       reason="haproxy not installed (Debian: apt-get install haproxy)"),
]


def local_config(gateways: list[int], port: int, metrics: int) -> str:
    """The shipped config with Docker's parts replaced by loopback addresses."""
    text = HAPROXY.read_text()
    text = re.sub(r"\nresolvers docker\n(?:    .*\n)+", "\n", text)
    text = text.replace("bind :8080", f"bind 127.0.0.1:{port}")
    text = text.replace("bind :8404", f"bind 127.0.0.1:{metrics}")
    text = text.replace(" resolvers docker init-addr none resolve-prefer ipv4", "")
    servers = "\n".join(f"    server gateway{i} 127.0.0.1:{p}" for i, p in enumerate(gateways))
    text = text.replace("    server-template gateway 20 gateway:8001", servers)
    return text.replace("    server-template router 5 router:8002",
                        "    server router0 127.0.0.1:9")


@pytest.fixture
def haproxy(start_gateway: Callable[..., Service], tmp_path: Path
            ) -> Iterator[tuple[str, list[Service]]]:
    gateways = [start_gateway(), start_gateway()]
    port, metrics = free_ports(2)
    config = tmp_path / "haproxy.cfg"
    config.write_text(local_config([g.port for g in gateways], port, metrics))
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10 * UNIT
        while not _ready(f"http://127.0.0.1:{port}/readyz"):
            assert proc.poll() is None, "haproxy exited"
            assert time.monotonic() < deadline, "haproxy did not come up"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", gateways
    finally:
        proc.kill()
        proc.wait()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


async def test_default_options_through_the_shipped_balancer(
    js: JsClients, haproxy: tuple[str, list[Service]]
) -> None:
    url, gateways = haproxy
    room, run = f"room:lb-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:8]
    reply = await js.connect("viaproxy", url, "/chat", make_token("viaproxy"),
                             transports=["polling", "websocket"])
    assert reply["type"] == "connect", reply
    assert (await js.call("viaproxy", "room:join", {"room": room}))["ok"] is True
    await js.connect("direct", gateways[1].url, "/chat", make_token("direct"))
    assert (await js.call("direct", "room:join", {"room": room}))["ok"] is True
    sent = []
    for n in range(10):
        for client in ("viaproxy", "direct"):
            ack = await js.call(client, "message:send",
                                {"room": room, "text": f"{client}{n}",
                                 "id": f"{client}-{run}-{n}"})
            assert ack["ok"] is True, ack
            sent.append(ack["seq"])
    for client in ("viaproxy", "direct"):
        got = [(await js.expect_event(client, "message:received"))[0]["seq"]
               for _ in range(len(sent))]
        assert got == sorted(sent)
    forwarded = "switchboard_gateway_polling_forwarded_total"
    names = [f'{forwarded}{{method="{m}",outcome="ok"}}' for m in ("GET", "POST")]
    names.append('switchboard_gateway_takeovers_total{outcome="taken"}')
    spread = 0.0
    for gateway in gateways:
        text = await metrics_of(gateway)
        spread += sum(metric(text, name) for name in names)
    assert spread >= 1, "no request of the session landed on the other gateway"
