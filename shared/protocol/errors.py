"""Stable error codes (in acks and ``request:error``) and close codes.

Two kinds of failure, as in centrifuge: an *error* answers one request and the connection
lives; a *close* ends the transport (the client reconnects) and a server DISCONNECT packet
ends the session for good.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Any


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    RATE_LIMITED = "rate_limited"
    TOO_LARGE = "too_large"
    TIMEOUT = "timeout"
    OVERLOADED = "overloaded"
    UNKNOWN_EVENT = "unknown_event"
    NOT_RECOVERABLE = "not_recoverable"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class CloseCode(IntEnum):
    """WebSocket close codes; every one of them lets socket.io-client reconnect."""

    DRAIN = 1012  # gateway shutting down: reconnect elsewhere and recover
    TOO_BIG = 1009  # frame over maxPayload
    POLICY = 1008  # invalid Engine.IO/Socket.IO state (e.g. event before CONNECT)
    PROTOCOL = 1002  # unparseable framing
    PING_TIMEOUT = 4000  # heartbeat failure
    CONNECT_TIMEOUT = 4001  # no namespace CONNECT within the connect timeout
    SLOW_CONSUMER = 4008  # send budget exceeded
    TRY_AGAIN_LATER = 1013  # the connect hook could not be reached: reconnect with backoff


def error_body(code: ErrorCode | str, message: str,
               retry_after_ms: int | None = None) -> dict[str, Any]:
    """The ``error`` object of every failed answer (also the body of ``request:error``).
    ``code`` is one of ours, or a string (an application's code, passed on unchanged)."""
    body: dict[str, Any] = {"code": str(code), "message": message}
    if retry_after_ms is not None:
        body["retry_after_ms"] = retry_after_ms
    return body


def error_ack(code: ErrorCode | str, message: str,
              retry_after_ms: int | None = None) -> dict[str, Any]:
    """``{ok: false, error: {code, message, retry_after_ms?}}``: a failed ack, and the same
    body every service answers a failed request with (the router's API, presence queries)."""
    return {"ok": False, "error": error_body(code, message, retry_after_ms)}
