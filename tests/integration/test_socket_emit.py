"""Emit to one socket by sid against a real nats-server, a router, two gateways and
python-socketio: over HTTP and over NATS (the Python backend helper), the socket on the right
gateway gets it and no other socket does, binary arrives as binary, an unknown sid is 404, a
gateway that is not there is 503, a reserved name is 400."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from nats.aio.client import Client

from client.backend import Backend, BackendError
from devcluster.natsserver import NatsServer
from router.gateway_ask import ask_gateway
from shared.sids import new_sid, owner_of
from shared.subjects import Subjects
from tests.integration import test_router_api
from tests.integration.test_router_api import call, router
from tests.support.processes import Service
from tests.support.timing import UNIT
from tests.support.tokens import make_token

pytestmark = pytest.mark.integration

NSP = "/live-updates"
http, nc = test_router_api.http, test_router_api.nc  # the same fixtures


@pytest.fixture(scope="module")
def api(nats_server: NatsServer, service_logs: Path) -> Iterator[Service]:
    service = router(nats_server.url)
    try:
        service.start(service_logs)
        yield service
    finally:
        service.stop()


class Socket:
    """One python-socketio client in ``NSP`` and the events it got, in order."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue()

        async def on_any(event: str, *args: Any) -> None:
            await self.events.put((event, args))

        self.client.on("*", on_any, namespace=NSP)

    @property
    def sid(self) -> str:
        sid = self.client.get_sid(NSP)
        assert isinstance(sid, str)
        return sid

    async def next(self) -> tuple[str, tuple[Any, ...]]:
        return await asyncio.wait_for(self.events.get(), 5 * UNIT)


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[Service, str], Any]]:
    sockets: list[Socket] = []

    async def make(gateway: Service, sub: str) -> Socket:
        socket = Socket()
        sockets.append(socket)
        await socket.client.connect(gateway.url, transports=["websocket"], namespaces=[NSP],
                                    auth={"token": make_token(sub)}, wait_timeout=5)
        return socket

    try:
        yield make
    finally:
        for socket in sockets:
            await socket.client.disconnect()


async def emit(http: aiohttp.ClientSession, api: Service, sid: str,
               body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return await call(http, api, "POST", f"/api/v1/sockets/{sid}/emit", body)


async def test_an_http_emit_reaches_the_one_socket_on_its_own_gateway(
    http: aiohttp.ClientSession, api: Service, gateway_pair: list[Service],
    connect: Callable[[Service, str], Any],
) -> None:
    one, two = gateway_pair
    alice, bob = await connect(one, "alice"), await connect(two, "bob")
    alice_too = await connect(two, "alice")
    assert owner_of(alice.sid) != owner_of(bob.sid)

    assert await emit(http, api, bob.sid, {"event": "order:filled", "args": [{"id": 7}, 2]}) \
        == (200, {"ok": True, "delivered": 1})
    assert await emit(http, api, alice.sid, {"event": "note", "args": ["for alice on one"]}) \
        == (200, {"ok": True, "delivered": 1})

    assert await bob.next() == ("order:filled", ({"id": 7}, 2))
    assert await alice.next() == ("note", ("for alice on one",))
    # a marker sent last to each: whatever came before it is all the socket got
    for socket in (alice, bob, alice_too):
        assert (await emit(http, api, socket.sid, {"event": "marker"}))[0] == 200
        assert await socket.next() == ("marker", ())
        assert socket.events.empty()


async def test_the_backend_emits_over_nats_with_binary(
    nc: Client, api: Service, gateway_pair: list[Service],
    connect: Callable[[Service, str], Any],
) -> None:
    carol = await connect(gateway_pair[1], "carol")
    backend = Backend(nc)
    answer = await backend.emit_to_socket(carol.sid, "file", b"\x00\xffbytes", {"name": "f"})
    assert answer["ok"] is True and answer["delivered"] == 1
    assert await carol.next() == ("file", (b"\x00\xffbytes", {"name": "f"}))

    with pytest.raises(BackendError) as refused:
        await backend.emit_to_socket(carol.sid, "disconnect")
    assert (refused.value.code, refused.value.status) == ("bad_request", 400)


async def test_unknown_sids_reserved_names_and_absent_gateways(
    http: aiohttp.ClientSession, api: Service, nc: Client, gateway_pair: list[Service],
    connect: Callable[[Service, str], Any],
) -> None:
    dave = await connect(gateway_pair[0], "dave")
    owner = owner_of(dave.sid)
    assert owner is not None

    status, body = await emit(http, api, new_sid(owner), {"event": "e"})
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, body = await emit(http, api, "not-a-sid", {"event": "e"})
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, body = await emit(http, api, new_sid("no-such-gateway"), {"event": "e"})
    assert (status, body["error"]["code"]) == (503, "unavailable")
    for reserved in ("connect", "connect_error", "disconnecting", "removeListener"):
        status, body = await emit(http, api, dave.sid, {"event": reserved})
        assert (status, body["error"]["code"]) == (400, "bad_request")
    status, _ = await call(http, api, "POST", f"/api/v1/sockets/{dave.sid}/emit",
                           {"event": "e"}, key="wrong")
    assert status == 401
    assert dave.events.empty()

    gone = Subjects("sb").gateway_emit("no-such-gateway")
    assert await ask_gateway(nc, gone, b"{}", 2 * UNIT, "emit") is None
