"""WSS in production, and the graceful drain: SIGTERM closes connections with 1012 spread over
the window and their clients recover on another gateway."""

from __future__ import annotations

import asyncio
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import trustme
from websockets.asyncio.client import connect

from devcluster.tcpproxy import SwitchProxy
from tests.support.jsclient import JsClients
from tests.support.processes import Service
from tests.support.timing import UNIT
from tests.support.tokens import make_token

pytestmark = pytest.mark.integration



async def test_production_gateway_serves_wss_with_its_certificate(
    start_gateway: Callable[..., Service], tmp_path: Path
) -> None:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    server_cert.cert_chain_pems[0].write_to_path(str(cert))
    server_cert.private_key_pem.write_to_path(str(key))
    gateway = start_gateway(SB_ENV="production", SB_TLS_CERT=str(cert), SB_TLS_KEY=str(key),
                            scheme="https")
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    url = f"wss://127.0.0.1:{gateway.port}/socket.io/?EIO=4&transport=websocket"
    async with connect(url + "&token=" + make_token("tls"), ssl=client_tls) as ws:
        assert str(await ws.recv()).startswith('0{"sid":')
        await ws.send("40/chat,")
        assert str(await ws.recv()).startswith('40/chat,{"sid":')


async def join_through(js: JsClients, proxy: SwitchProxy, names: list[str], room: str) -> None:
    """socket.io-client sockets through ``proxy``, reconnecting fast, each joined to ``room``."""
    for name in names:
        await js.connect(name, proxy.url, "/chat", make_token(name), reconnection=True,
                         reconnectionDelay=100, reconnectionDelayMax=200)
        await js.call(name, "room:join", {"room": room})


async def test_drain_closes_with_1012_and_clients_recover_elsewhere(
    js: JsClients, start_gateway: Callable[..., Service], gateway_pair: list[Service]
) -> None:
    draining = start_gateway(SB_DRAIN_WINDOW_S="1", SB_DRAIN_RATE="4")  # 4 closes over 1 s
    survivor = gateway_pair[1]
    proxy = await SwitchProxy([("127.0.0.1", draining.port)]).start()
    names = [f"dr{i}" for i in range(4)]
    try:
        await join_through(js, proxy, names, "room:drain")
        await js.connect("talker", survivor.url, "/chat", make_token("talker"))
        await js.call("talker", "room:join", {"room": "room:drain"})
        await js.call("talker", "message:send", {"room": "room:drain", "text": "d0",
                                                 "id": "d0"})
        for name in names:
            await js.expect_event(name, "message:received")
        proxy.switch([("127.0.0.1", survivor.port)])
        assert draining.proc is not None
        draining.proc.terminate()
        await asyncio.sleep(0.1 * UNIT)
        with pytest.raises(urllib.error.HTTPError) as not_ready:
            await asyncio.to_thread(urllib.request.urlopen, draining.url + "/readyz", None, 5)
        not_ready.value.close()
        assert not_ready.value.code == 503
        await js.call("talker", "message:send", {"room": "room:drain", "text": "d1",
                                                 "id": "d1"})
        for name in names:
            reconnected = await js.expect(name, {"connect"}, within=10 * UNIT)
            assert reconnected["recovered"] is True
            message, _ = await js.expect_event(name, "message:received")
            assert message["text"] == "d1"
        assert await asyncio.to_thread(draining.proc.wait, 10) == 0
        assert "1012" in draining.log_tail(40)
    finally:
        await proxy.stop()


async def test_a_drain_closes_at_its_rate_and_does_not_wait_out_a_long_window(
    js: JsClients, start_gateway: Callable[..., Service], gateway_pair: list[Service]
) -> None:
    """Three sockets at the default rate (2,000 closes/s) take milliseconds to close, so the
    gateway stops long before its 60 s window, and every client recovers on the survivor."""
    draining = start_gateway(SB_DRAIN_WINDOW_S="60")
    survivor = gateway_pair[1]
    proxy = await SwitchProxy([("127.0.0.1", draining.port)]).start()
    names = [f"dq{i}" for i in range(3)]
    try:
        await join_through(js, proxy, names, "room:quick-drain")
        proxy.switch([("127.0.0.1", survivor.port)])
        assert draining.proc is not None
        draining.proc.terminate()
        assert await asyncio.to_thread(draining.proc.wait, 10 * UNIT) == 0
        for name in names:
            reconnected = await js.expect(name, {"connect"}, within=10 * UNIT)
            assert reconnected["recovered"] is True
        assert "draining 3 connections over 0.0s" in draining.log_tail(40)
    finally:
        await proxy.stop()
