"""HTTP/1.1 requests and responses as plain values, the parser that makes them, and the router.

The gateway's port serves health, readiness, metrics and the Socket.IO endpoint, and the
Engine.IO polling transport will need request bodies, keep-alive and CORS preflights on it:
so the HTTP layer is the gateway's own, on ``httptools`` (llhttp, in C: ~2.6 µs to parse an
upgrade request here, against ~31 µs with the pure-Python ``h11``). The parser is sans-I/O:
bytes in, :class:`Request` values (or the error response that must end the connection) out.
Handlers are plain functions from a :class:`Request` to a :class:`Response`, an
:class:`Upgrade`, or an awaitable of a :class:`Response`, so a new endpoint never touches the
parser or the socket code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from time import time
from urllib.parse import parse_qs

import httptools

MAX_HEADER_BYTES = 16_384  # request line and headers together (websockets allowed 8 KiB a line)
MAX_HEADERS = 128  # as websockets' MAX_NUM_HEADERS
SERVER = "switchboard"


class Headers(Mapping[str, str]):
    """Request headers in arrival order, looked up case-insensitively; ``[name]`` is the first
    value, :meth:`get_all` every one (a repeated Origin or Authorization is refused)."""

    __slots__ = ("_index", "items_in_order")

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self.items_in_order: list[tuple[str, str]] = []
        self._index: dict[str, list[str]] = {}
        for name, value in items or ():
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        self.items_in_order.append((name, value))
        self._index.setdefault(name.lower(), []).append(value)

    def __getitem__(self, name: str) -> str:
        return self._index[name.lower()][0]

    def get_all(self, name: str) -> list[str]:
        return self._index.get(name.lower(), [])

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str  # path and query as sent, e.g. "/socket.io/?EIO=4&transport=polling"
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""
    http_version: str = "1.1"
    keep_alive: bool = True
    peer: str | None = None

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> dict[str, list[str]]:
        _, _, query = self.target.partition("?")
        return parse_qs(query, keep_blank_values=True)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False  # end the connection after this response

    def encode(self, keep_alive: bool = True, head: bool = False) -> bytes:
        """The bytes on the wire; ``keep_alive`` False adds ``Connection: close``, ``head``
        (a HEAD request) leaves the body out but keeps its length."""
        lines = [f"HTTP/1.1 {self.status} {_reason(self.status)}", f"Date: {_date()}",
                 f"Server: {SERVER}"]
        lines.extend(f"{name}: {value}" for name, value in self.headers)
        if self.status >= 200 and self.status not in (204, 304):
            lines.append(f"Content-Length: {len(self.body)}")
        if not keep_alive or self.close:
            lines.append("Connection: close")
        head_bytes = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head_bytes if head else head_bytes + self.body


def text_response(status: int, text: str, headers: tuple[tuple[str, str], ...] = (),
                  close: bool = False) -> Response:
    return Response(status, text.encode(),
                    (("Content-Type", "text/plain; charset=utf-8"), *headers), close)


@dataclass(frozen=True, slots=True)
class Upgrade:
    """Switch the connection to another protocol: ``response`` (a 101) is written, then the
    transport goes to ``protocol``, with any bytes that followed the request. A WebSocket
    protocol gets the 101 as its preface instead, to write with its first frames, unless
    frames came with the request (it may answer those at once)."""

    response: Response
    protocol: Callable[[], asyncio.Protocol]


Result = Response | Upgrade | Awaitable[Response] | Awaitable[Response | Upgrade]
Handler = Callable[[Request], Result]


class Router:
    """Exact paths to handlers and their methods, anything else to ``fallback`` (which sees
    every method, so an endpoint like Socket.IO's can answer its own preflights). HEAD is
    served as GET; OPTIONS on a route answers 204 with ``Allow``; another method 405."""

    def __init__(self, fallback: Handler) -> None:
        self._fallback = fallback
        self._routes: dict[str, tuple[Handler, frozenset[str]]] = {}

    def add(self, path: str, handler: Handler, methods: frozenset[str] = frozenset({"GET"})
            ) -> None:
        self._routes[path] = (handler, methods)

    def __call__(self, request: Request) -> Result:
        route = self._routes.get(request.path)
        if route is None:
            return self._fallback(request)
        handler, methods = route
        method = "GET" if request.method == "HEAD" else request.method
        if method in methods:
            return handler(request)
        allow = (("Allow", ", ".join(sorted(methods | {"HEAD", "OPTIONS"}))),)
        if method == "OPTIONS":
            return Response(204, headers=allow)
        return text_response(405, "method not allowed\n", allow)


REASONS = {status.value: status.phrase for status in HTTPStatus}


def _reason(status: int) -> str:
    return REASONS.get(status, "Unknown")


_date_cache: tuple[int, str] = (0, "")


def _date() -> str:
    """The Date header, formatted once per second."""
    global _date_cache
    now = int(time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


BAD_REQUEST = text_response(400, "malformed HTTP request\n", close=True)
HEADERS_TOO_LARGE = text_response(431, "request headers too large\n", close=True)
BODY_TOO_LARGE = text_response(413, "request body too large\n", close=True)


class RequestParser:
    """Bytes to requests, for one connection. :meth:`feed` returns what completed: requests,
    and at most one final error :class:`Response` (400, 413, 431) after which the connection
    must be closed. After an upgrade request, :attr:`upgraded` holds the bytes that followed
    it (the first frames of the new protocol) and nothing more is parsed."""

    __slots__ = ("_body", "_body_size", "_completed", "_headers", "_max_body", "_parser",
                 "_peer", "_refusal", "_size", "_url", "done", "upgraded")

    def __init__(self, max_body: int, peer: str | None = None) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._max_body = max_body
        self._peer = peer
        self._completed: list[Request | Response] = []
        self._refusal: Response | None = None
        self._start()
        self.done = False
        self.upgraded: bytes | None = None

    def _start(self) -> None:
        self._url: list[bytes] = []
        self._headers = Headers()
        self._body: list[bytes] = []
        self._body_size = 0
        self._size = 0

    def feed(self, data: bytes) -> list[Request | Response]:
        if self.done:
            return []
        completed: list[Request | Response] = []
        self._completed = completed
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.upgraded = data[upgrade.args[0]:]
            self.done = True
        except httptools.HttpParserError:  # also what a callback's refusal surfaces as
            completed.append(self._refusal or BAD_REQUEST)
            self.done = True
        return completed

    def _refuse(self, response: Response) -> None:
        """Stop parsing: httptools turns the exception into an HttpParserError in feed."""
        self._refusal = response
        raise ValueError(response.status)

    def _grow(self, size: int) -> None:
        self._size += size
        if self._size > MAX_HEADER_BYTES or len(self._headers.items_in_order) > MAX_HEADERS:
            self._refuse(HEADERS_TOO_LARGE)

    # --- httptools callbacks ------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self._grow(len(url))
        self._url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._grow(len(name) + len(value) + 4)
        self._headers.add(name.decode("latin-1"), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        length = self._headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self._max_body:
            self._refuse(BODY_TOO_LARGE)

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._max_body:
            self._refuse(BODY_TOO_LARGE)
        self._body.append(body)

    def on_message_complete(self) -> None:
        parser = self._parser
        self._completed.append(Request(
            method=parser.get_method().decode("latin-1"),
            target=b"".join(self._url).decode("latin-1"),
            headers=self._headers,
            body=b"".join(self._body),
            http_version=parser.get_http_version(),
            keep_alive=parser.should_keep_alive(),
            peer=self._peer,
        ))
        self._start()

