"""What the SDK raises. Two kinds, as in the gateway's contract: a failed *request* (the
connection lives, the app decides) and the end of the *session* (nothing more will work
until ``connect()`` is called again)."""

from __future__ import annotations

from typing import Any


class SwitchboardError(Exception):
    """Base of every SDK error."""


class RequestFailed(SwitchboardError):
    """The gateway answered a request with ``{ok: false, error: {code, message}}``."""

    def __init__(self, event: str, code: str, message: str,
                 retry_after_ms: int | None = None) -> None:
        super().__init__(f"{event}: {code}: {message}")
        self.event = event
        self.code = code
        self.message = message
        self.retry_after_ms = retry_after_ms


class AckTimeout(SwitchboardError):
    """No ack arrived after every attempt of an ``emit_with_ack``."""

    def __init__(self, event: str, attempts: int) -> None:
        super().__init__(f"{event}: no ack after {attempts} attempt(s)")
        self.event = event
        self.attempts = attempts


class ConnectRefused(SwitchboardError):
    """A namespace answered CONNECT_ERROR (bad token, unknown namespace): terminal."""

    def __init__(self, namespace: str, message: str, data: Any = None) -> None:
        super().__init__(f"{namespace}: {message}")
        self.namespace = namespace
        self.message = message
        self.data = data


class TransportLost(SwitchboardError):
    """The WebSocket is gone or failed its heartbeat; the client reconnects."""


class ClientClosed(SwitchboardError):
    """The client is disconnected for good (closed, kicked or refused)."""
