"""Switchboard's Python client SDK.

``SwitchboardClient`` connects to a gateway over Socket.IO v5 / Engine.IO v4 (WebSocket),
reconnects with backoff and jitter, recovers its session (``pid``/offset) or re-joins its
rooms with ``since``, retries acked requests with the same idempotency key, and hands the app
every message once and in room order, filling gaps from the room's history.
"""

from client.backend import Backend, BackendError, BackendUnavailable
from client.client import SwitchboardClient
from client.counters import Counters
from client.errors import (
    AckTimeout,
    ClientClosed,
    ConnectRefused,
    RequestFailed,
    SwitchboardError,
    TransportLost,
)
from client.positions import JsonFilePositionStore, MemoryPositionStore, PositionStore
from client.sequence import Gap
from client.state import ConnectionState, DisconnectReason

__all__ = [
    "AckTimeout",
    "Backend",
    "BackendError",
    "BackendUnavailable",
    "ClientClosed",
    "ConnectRefused",
    "ConnectionState",
    "Counters",
    "DisconnectReason",
    "Gap",
    "JsonFilePositionStore",
    "MemoryPositionStore",
    "PositionStore",
    "RequestFailed",
    "SwitchboardClient",
    "SwitchboardError",
    "TransportLost",
]
