"""What the server API answers: an HTTP status and a JSON object, the same over HTTP and NATS.

Success is ``{"ok": true, ...}``; failure is ``{"ok": false, "error": {"code", "message",
"retry_after_ms"?}}`` with a stable code (the gateway's error codes, ``docs/protocol.md``).
Over NATS the status travels inside the object as ``"status"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.protocol.errors import error_ack

STATUS_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "bad_request",
    413: "too_large",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


@dataclass(frozen=True, slots=True)
class Failure:
    status: int
    code: str
    message: str
    retry_after_ms: int | None = None

    def body(self) -> dict[str, Any]:
        return error_ack(self.code, self.message, self.retry_after_ms)


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any] = field(default_factory=dict)

    def with_status(self) -> dict[str, Any]:
        """The NATS reply: the HTTP answer plus its status."""
        return {**self.body, "status": self.status}


def ok(**fields: Any) -> Answer:
    return Answer(200, {"ok": True, **fields})


def failed(failure: Failure) -> Answer:
    return Answer(failure.status, failure.body())


def bad_request(message: str) -> Failure:
    return Failure(400, "bad_request", message)


def too_large(message: str) -> Failure:
    return Failure(413, "too_large", message)


def unauthorized() -> Failure:
    return Failure(401, "unauthorized", "missing or wrong API key (Authorization: Bearer)")


def not_found(message: str = "no such endpoint") -> Failure:
    return Failure(404, "not_found", message)


def rate_limited(retry_after_ms: int) -> Failure:
    return Failure(429, "rate_limited", "over the router's API rate limit", retry_after_ms)


def unavailable(message: str) -> Failure:
    return Failure(503, "unavailable", message)


def internal() -> Failure:
    return Failure(500, "internal", "internal error; see the router log")


def from_status(status: int, message: str) -> Failure:
    """A failure for a status the HTTP framework decided (404, 405, 413)."""
    return Failure(status, STATUS_CODES.get(status, "bad_request"), message)
