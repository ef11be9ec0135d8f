"""The HTTP/1.1 server and the WebSocket protocol after an upgrade, on a real loopback socket:
keep-alive, one request at a time, refusals that close, the request timeout; then messages,
fragments, pings, both directions of the close handshake, its timeout and the size limit,
against the websockets client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gateway.http import Request, Response, Router, Upgrade, text_response
from gateway.http_server import HttpProtocol
from gateway.outbox import Flusher, Outbox
from gateway.websocket import check_upgrade, switching_protocols
from gateway.websocket_protocol import PASS_LIMIT, WebSocketProtocol
from tests.support.rawhttp import exchange, statuses
from tests.support.timing import UNIT

Serve = Callable[..., Awaitable[int]]


class Echo:
    """The connection's side: echoes messages, closes with 1012 on "close please"."""

    def __init__(self, ws: WebSocketProtocol) -> None:
        self.ws = ws
        self.lost_code: int | None = None
        self.closed_by_protocol = False
        self.received: list[str | bytes] = []

    def receive(self, message: str | bytes) -> None:
        self.received.append(message)
        if message == "close please":
            self.ws.close(1012, "as asked")
            return
        assert self.ws.transport is not None
        frame = message.encode() if isinstance(message, str) else message
        self.ws.transport.write(bytes([0x81 if isinstance(message, str) else 0x82, len(frame)])
                                + frame)

    def closing(self) -> None:
        self.closed_by_protocol = True

    def lost(self) -> None:
        self.lost_code = self.ws.close_code
        ECHOES.append(self)


ECHOES: list[Echo] = []


def websocket_endpoint(max_size: int, close_timeout: float) -> Callable[[Request],
                                                                        Response | Upgrade]:
    def endpoint(request: Request) -> Response | Upgrade:
        accept = check_upgrade(request)
        if isinstance(accept, Response):
            return accept
        return Upgrade(switching_protocols(accept),
                       lambda: WebSocketProtocol(max_size, Echo, close_timeout))
    return endpoint


async def slow(request: Request) -> Response:
    await asyncio.sleep(0.05 * UNIT)
    return Response(200, b"slow")


def router(max_size: int = 100, close_timeout: float = 5.0) -> Router:
    routes = Router(websocket_endpoint(max_size, close_timeout))
    routes.add("/echo", lambda request: Response(200, request.body), frozenset({"POST"}))
    routes.add("/fast", lambda _: text_response(200, "fast"))
    routes.add("/slow", slow)
    return routes


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def start(request_timeout: float = 5.0, max_size: int = 100,
                    close_timeout: float = 5.0) -> int:
        loop = asyncio.get_running_loop()
        routes = router(max_size, close_timeout)
        server = await loop.create_server(lambda: HttpProtocol(routes, 100, request_timeout),
                                          "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    ECHOES.clear()
    try:
        yield start
    finally:
        for server in servers:
            server.close()


async def test_keep_alive_and_pipelined_requests_answered_in_order(serve: Serve) -> None:
    port = await serve()

    wire = await exchange(port, b"GET /slow HTTP/1.1\r\n\r\nGET /fast HTTP/1.1\r\n\r\n"
                                b"POST /echo HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody")

    assert statuses(wire) == [200, 200, 200]
    assert wire.index(b"slow") < wire.index(b"fast") < wire.index(b"body")
    assert b"Connection: close" not in wire


async def test_connection_close_ends_after_the_answer(serve: Serve) -> None:
    port = await serve()

    wire = await exchange(port, b"GET /fast HTTP/1.1\r\nConnection: close\r\n\r\n"
                                b"GET /fast HTTP/1.1\r\n\r\n")

    assert statuses(wire) == [200] and b"Connection: close" in wire


@pytest.mark.parametrize(("data", "status"), [
    (b"BROKEN\r\n\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 413),
    (b"GET /fast HTTP/1.1\r\nX: " + b"x" * 20_000 + b"\r\n\r\n", 431),
    (b"DELETE /fast HTTP/1.1\r\n\r\n", 405),
])
async def test_refusals(serve: Serve, data: bytes, status: int) -> None:
    port = await serve()

    assert statuses(await exchange(port, data))[-1] == status


async def test_an_incomplete_request_is_dropped_after_the_timeout(serve: Serve) -> None:
    port = await serve(request_timeout=0.1 * UNIT)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /fast HTTP/1.1\r\nHost:")

    assert await asyncio.wait_for(reader.read(), 5 * UNIT) == b""
    writer.close()


async def test_an_upgrade_refused_before_the_101_closes(serve: Serve) -> None:
    port = await serve()

    wire = await exchange(port, b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n"
                                b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n")

    assert statuses(wire) == [400] and b"Connection: close" in wire


async def test_messages_fragments_and_pings(serve: Serve) -> None:
    port = await serve()
    async with connect(f"ws://127.0.0.1:{port}/ws", compression=None) as ws:
        assert ws.response is not None and ws.response.headers["Server"] == "switchboard"
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await ws.send([b"ab", b"cd"])  # two fragments
        assert await ws.recv() == b"abcd"
        await asyncio.wait_for(await ws.ping(b"p"), 5 * UNIT)
        await ws.close(4000, "done")
    assert ws.close_code == 4000  # the server echoed the client's code
    await asyncio.sleep(0.05 * UNIT)
    assert [(echo.lost_code, echo.closed_by_protocol) for echo in ECHOES] == [(4000, True)]


async def test_a_server_close_waits_for_the_answer(serve: Serve) -> None:
    port = await serve()
    async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
        await ws.send("close please")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5 * UNIT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    assert closed.value.rcvd.reason == "as asked"


async def test_a_client_that_never_answers_the_close_is_cut_off(serve: Serve) -> None:
    port = await serve(close_timeout=0.1 * UNIT)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n"
                 + bytes([0x81, 0x80 | 12]) + b"\0\0\0\0" + b"close please")
    received = await asyncio.wait_for(reader.read(), 5 * UNIT)  # until the server closes

    assert received.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert received.endswith(b"\x88\x0a\x03\xf4as asked")
    writer.close()


async def test_an_oversize_message_is_closed_with_1009(serve: Serve) -> None:
    port = await serve(max_size=100)
    async with connect(f"ws://127.0.0.1:{port}/ws", compression=None) as ws:
        await ws.send("x" * 101)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5 * UNIT)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_an_upgrade_behind_a_slow_request_keeps_its_later_frames(serve: Serve) -> None:
    port = await serve()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /slow HTTP/1.1\r\n\r\n"
                 b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n")
    await writer.drain()
    writer.write(bytes([0x81, 0x80 | 2]) + b"\0\0\0\0" + b"hi")  # while /slow is pending
    received = b""
    with contextlib.suppress(TimeoutError):
        while not received.endswith(b"\x81\x02hi"):
            received += await asyncio.wait_for(reader.read(65536), 5 * UNIT)
    writer.close()

    assert statuses(received) == [200, 101]
    assert received.endswith(b"\x81\x02hi")


def burst(count: int) -> bytes:
    """An upgrade and ``count`` tiny masked text frames, all in one write."""
    return (b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            + b"".join(bytes([0x81, 0x80 | len(b"%03d" % n)]) + b"\0\0\0\0" + b"%03d" % n
                       for n in range(count)))


async def test_a_burst_of_frames_is_handed_over_a_pass_at_a_time_and_in_order(
    serve: Serve,
) -> None:
    port = await serve()
    count = PASS_LIMIT * 4 + 3

    wire = await exchange(port, burst(count))

    echoed = wire.split(b"\r\n\r\n", 1)[1]
    assert echoed == b"".join(b"\x81\x03%03d" % n for n in range(count))


async def test_frames_read_before_a_drop_are_still_handed_over(serve: Serve) -> None:
    port = await serve()
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(burst(PASS_LIMIT * 3))
    await writer.drain()
    writer.transport.abort()
    for _ in range(100):
        if ECHOES:
            break
        await asyncio.sleep(0.01 * UNIT)

    (echo,) = ECHOES
    assert echo.received == [f"{n:03d}" for n in range(PASS_LIMIT * 3)]


class Greeter:
    """Writes through an outbox that took the 101, as the gateway's connection does: the
    greeting and the 101 leave in one write."""

    def __init__(self, ws: WebSocketProtocol) -> None:
        assert ws.transport is not None
        loop = asyncio.get_running_loop()
        self.outbox = Outbox(ws.transport, Flusher(loop), 1_000_000, lambda: None,
                             ws.take_preface())
        self.outbox.push(b"\x81\x05hello")

    def receive(self, message: str | bytes) -> None:
        pass

    def closing(self) -> None:
        pass

    def lost(self) -> None:
        pass


async def greeting_server() -> tuple[asyncio.Server, int]:
    def endpoint(request: Request) -> Response | Upgrade:
        accept = check_upgrade(request)
        if isinstance(accept, Response):
            return accept
        return Upgrade(switching_protocols(accept), lambda: WebSocketProtocol(100, Greeter))

    loop = asyncio.get_running_loop()
    routes = Router(endpoint)
    server = await loop.create_server(lambda: HttpProtocol(routes, 100, 5.0), "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


UPGRADE = (b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


async def test_the_101_and_the_first_frames_leave_together() -> None:
    server, port = await greeting_server()
    try:
        wire = await exchange(port, UPGRADE)
    finally:
        server.close()
    head, _, frames = wire.partition(b"\r\n\r\n")
    assert statuses(head + b"\r\n") == [101] and frames == b"\x81\x05hello"


@pytest.mark.parametrize(("pipelined", "answer"), [
    (bytes([0x89, 0x80]) + b"\0\0\0\0", b"\x8a\x00"),  # a ping, answered at once
    (bytes([0x88, 0x82]) + b"\0\0\0\0" + b"\x03\xe8", b"\x88\x02\x03\xe8"),  # a close, echoed
])
async def test_frames_sent_with_the_upgrade_are_answered_after_the_101(pipelined: bytes,
                                                                      answer: bytes) -> None:
    """The protocol answers a ping or a close straight to the transport, so a 101 still
    waiting in the outbox would come after that answer: it is written at once instead."""
    server, port = await greeting_server()
    try:
        wire = await exchange(port, UPGRADE + pipelined)
    finally:
        server.close()
    assert wire.startswith(b"HTTP/1.1 101 ")
    _, _, frames = wire.partition(b"\r\n\r\n")
    assert answer in frames
