"""The HTTP/1.1 layer's pure parts: bytes to requests (keep-alive, pipelining, bodies, limits,
malformed input, upgrades), responses to bytes, and the router."""

from __future__ import annotations

import pytest

from gateway.http import (
    MAX_HEADER_BYTES,
    Headers,
    Request,
    RequestParser,
    Response,
    Router,
    Upgrade,
    text_response,
)

GET = b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"
UPGRADE = (b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: gw\r\n"
           b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def requests(parser: RequestParser, data: bytes) -> list[Request]:
    parsed = parser.feed(data)
    assert all(isinstance(item, Request) for item in parsed), parsed
    return [item for item in parsed if isinstance(item, Request)]


def refusal(data: bytes, max_body: int = 1000) -> Response:
    parser = RequestParser(max_body)
    *_, last = parser.feed(data)
    assert isinstance(last, Response)
    assert parser.done and parser.feed(GET) == []
    return last


def test_a_get_with_its_target_query_and_headers() -> None:
    (request,) = requests(RequestParser(1000, "10.0.0.1"),
                          b"GET /socket.io/?EIO=4&transport=polling&t=x HTTP/1.1\r\n"
                          b"Host: gw\r\nOrigin: https://a.example\r\n\r\n")

    assert (request.method, request.path, request.http_version) == ("GET", "/socket.io/", "1.1")
    assert request.target == "/socket.io/?EIO=4&transport=polling&t=x"
    assert request.query == {"EIO": ["4"], "transport": ["polling"], "t": ["x"]}
    assert request.headers["origin"] == request.headers["ORIGIN"] == "https://a.example"
    assert request.peer == "10.0.0.1" and request.keep_alive and request.body == b""


def test_repeated_headers_are_all_kept_in_order() -> None:
    (request,) = requests(RequestParser(1000), b"GET / HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\n\r\n")

    assert request.headers.get_all("X-A") == ["1", "2"]
    assert request.headers["x-a"] == "1"
    assert request.headers.items_in_order == [("X-A", "1"), ("x-a", "2")]
    assert request.headers.get_all("missing") == []


@pytest.mark.parametrize(("head", "keep_alive"), [
    (b"GET / HTTP/1.1\r\n\r\n", True),
    (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", False),
    (b"GET / HTTP/1.0\r\n\r\n", False),
    (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
])
def test_keep_alive_follows_the_version_and_connection_header(head: bytes,
                                                              keep_alive: bool) -> None:
    (request,) = requests(RequestParser(1000), head)

    assert request.keep_alive is keep_alive


def test_pipelined_requests_come_out_in_order() -> None:
    parsed = requests(RequestParser(1000), GET + b"GET /readyz HTTP/1.1\r\n\r\n" + GET)

    assert [r.path for r in parsed] == ["/healthz", "/readyz", "/healthz"]


def test_a_request_split_into_single_bytes() -> None:
    parser = RequestParser(1000)
    data = b"POST /x?a=1 HTTP/1.1\r\nContent-Length: 5\r\nX-Long: " + b"v" * 50 + b"\r\n\r\nhello"

    parsed = [item for byte in data for item in requests(parser, bytes([byte]))]

    assert [(r.target, r.headers["x-long"], r.body) for r in parsed] == [
        ("/x?a=1", "v" * 50, b"hello")]


def test_bodies_by_content_length_and_chunked() -> None:
    parser = RequestParser(1000)
    data = (b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
            b"POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n1\r\nf\r\n0\r\n\r\n")

    assert [(r.path, r.body) for r in requests(parser, data)] == [("/a", b"abc"), ("/b", b"def")]


def test_a_body_at_the_cap_is_kept() -> None:
    (request,) = requests(RequestParser(10),
                          b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n" + b"x" * 10)

    assert request.body == b"x" * 10


def test_a_declared_body_over_the_cap_is_413_before_it_arrives() -> None:
    assert refusal(b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", max_body=10).status == 413


def test_a_chunked_body_over_the_cap_is_413() -> None:
    data = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\nabcdef\r\n"

    assert refusal(data, max_body=10).status == 413


def test_headers_over_the_size_cap_are_431() -> None:
    data = b"GET / HTTP/1.1\r\nX-Big: " + b"x" * MAX_HEADER_BYTES + b"\r\n\r\n"

    assert refusal(data).status == 431


def test_a_huge_request_target_is_431_even_before_the_line_ends() -> None:
    assert refusal(b"GET /" + b"a" * (MAX_HEADER_BYTES + 1)).status == 431


def test_too_many_headers_are_431() -> None:
    data = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % n for n in range(200)) + b"\r\n"

    assert refusal(data).status == 431


@pytest.mark.parametrize("data", [
    b"NOT HTTP AT ALL\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00",  # a TLS ClientHello on the plain port
    b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
])
def test_malformed_requests_are_400_and_end_the_connection(data: bytes) -> None:
    response = refusal(data)

    assert response.status == 400 and response.close


def test_requests_before_a_malformed_one_still_come_out() -> None:
    parsed = RequestParser(1000).feed(GET + b"GARBAGE\r\n\r\n")

    assert isinstance(parsed[0], Request) and isinstance(parsed[1], Response)
    assert parsed[1].status == 400


def test_an_upgrade_request_keeps_the_bytes_that_follow_it() -> None:
    parser = RequestParser(1000)

    (request,) = requests(parser, UPGRADE + b"\x81\x85frame")

    assert request.headers["upgrade"] == "websocket"
    assert parser.done and parser.upgraded == b"\x81\x85frame"
    assert parser.feed(b"more") == []


def test_response_bytes() -> None:
    wire = text_response(404, "Not Found\n").encode()

    head, body = wire.split(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 404 Not Found" and body == b"Not Found\n"
    assert b"Content-Length: 10" in lines and b"Server: switchboard" in lines
    assert b"Content-Type: text/plain; charset=utf-8" in lines
    assert b"Connection: close" not in lines
    assert any(line.startswith(b"Date: ") for line in lines)


def test_response_bytes_when_closing_for_head_and_without_content() -> None:
    assert b"\r\nConnection: close\r\n" in Response(200, b"x").encode(keep_alive=False)
    assert b"\r\nConnection: close\r\n" in Response(200, b"x", close=True).encode()
    head = Response(200, b"hello").encode(head=True)
    assert head.endswith(b"Content-Length: 5\r\n\r\n")
    assert b"Content-Length" not in Response(204).encode()
    assert Response(101).encode().startswith(b"HTTP/1.1 101 Switching Protocols\r\n")


def ok(request: Request) -> Response:
    return Response(200, request.path.encode())


def fallback(request: Request) -> Response:
    return Response(299, b"fallback")


@pytest.mark.parametrize(("method", "path", "status", "allow"), [
    ("GET", "/a", 200, None),
    ("HEAD", "/a", 200, None),
    ("OPTIONS", "/a", 204, "GET, HEAD, OPTIONS"),
    ("POST", "/a", 405, "GET, HEAD, OPTIONS"),
    ("POST", "/b", 200, None),
    ("DELETE", "/anything", 299, None),
    ("GET", "/a/", 299, None),
])
def test_router(method: str, path: str, status: int, allow: str | None) -> None:
    router = Router(fallback)
    router.add("/a", ok)
    router.add("/b", ok, frozenset({"POST"}))

    answer = router(Request(method, path + "?q=1", Headers()))

    assert isinstance(answer, Response) and answer.status == status
    assert dict(answer.headers).get("Allow") == allow


def test_a_handler_may_upgrade() -> None:
    upgrade = Upgrade(Response(101), lambda: NotImplemented)
    router = Router(lambda _: upgrade)

    assert router(Request("GET", "/socket.io/")) is upgrade
