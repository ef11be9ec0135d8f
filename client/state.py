"""Connection states and the transitions between them, with listeners.

Apps show these (spinner, "reconnecting…" banner) and chaos tests assert their order, so
the set of legal transitions is explicit and an impossible one is a bug that raises instead
of being reported to listeners.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

log = logging.getLogger(__name__)


class ConnectionState(StrEnum):
    CONNECTING = "connecting"  # the first connect is in progress
    CONNECTED = "connected"  # every namespace is connected and its rooms are joined
    RECONNECTING = "reconnecting"  # the transport was lost; waiting or retrying
    DISCONNECTED = "disconnected"  # not connected and not trying (initial, closed, terminal)


_ALLOWED: dict[ConnectionState, frozenset[ConnectionState]] = {
    ConnectionState.DISCONNECTED: frozenset({ConnectionState.CONNECTING}),
    ConnectionState.CONNECTING: frozenset(
        {ConnectionState.CONNECTED, ConnectionState.DISCONNECTED}),
    ConnectionState.CONNECTED: frozenset(
        {ConnectionState.RECONNECTING, ConnectionState.DISCONNECTED}),
    ConnectionState.RECONNECTING: frozenset(
        {ConnectionState.CONNECTED, ConnectionState.DISCONNECTED}),
}


@dataclass(frozen=True, slots=True)
class DisconnectReason:
    """Why the client is (or was last) not connected.

    ``terminal`` reasons end the session for good (server DISCONNECT such as a kick,
    CONNECT_ERROR such as a refused token, the app's own ``close()``); the others are
    transport losses the client recovers from by reconnecting.
    """

    kind: str  # "transport", "server_disconnect", "connect_error", "client_close"
    message: str = ""
    namespace: str | None = None
    data: Any = None

    @property
    def terminal(self) -> bool:
        return self.kind != "transport"


StateListener = Callable[[ConnectionState, ConnectionState], None]


class StateMachine:
    """Holds the current state; :meth:`move` validates and notifies listeners in order."""

    def __init__(self) -> None:
        self.state = ConnectionState.DISCONNECTED
        self.reason: DisconnectReason | None = None
        self._listeners: list[StateListener] = []

    def subscribe(self, listener: StateListener) -> None:
        self._listeners.append(listener)

    def move(self, new: ConnectionState, reason: DisconnectReason | None = None) -> bool:
        """Go to ``new``; a move to the current state is a no-op returning ``False``."""
        old = self.state
        if new is old:
            return False
        if new not in _ALLOWED[old]:
            raise RuntimeError(f"illegal connection state change {old} -> {new}")
        self.state = new
        if reason is not None:
            self.reason = reason
        for listener in list(self._listeners):
            try:
                listener(old, new)
            except Exception:  # a listener's bug must not break the connection logic
                log.exception("connection state listener failed")
        return True
