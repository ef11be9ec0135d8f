"""The broker boundary between a gateway and the rest of the cluster.

Gateways know rooms, never subjects: a broker subscribes a room's fan-out while the gateway
has local members, and publishes a room's messages. The durable namespaces' log (sequence,
per-room ``prev``, idempotent publishes) slots in behind the same three methods: a
:class:`Delivery` carries ``seq``/``prev`` and a :class:`PublishResult` the sequence and the
duplicate verdict.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol


class BrokerUnavailable(Exception):
    """The broker could not take or confirm the operation; the client may retry."""


@dataclass(frozen=True, slots=True)
class Delivery:
    body: bytes
    seq: int | None = None
    prev: int | None = None


@dataclass(frozen=True, slots=True)
class PublishResult:
    seq: int | None = None
    duplicate: bool = False


Deliver = Callable[[Delivery], Awaitable[None]]


class Broker(Protocol):
    async def subscribe(self, nsp: str, room: str, deliver: Deliver) -> None:
        """Once this returns, every message published to the room afterwards, by any
        gateway, reaches ``deliver`` once and in publish order. One subscription per room;
        ``deliver`` is awaited before the next message of the same room is handed over."""

    async def unsubscribe(self, nsp: str, room: str) -> None:
        """Stop deliveries for the room (a no-op for a room not subscribed)."""

    async def publish(
        self, nsp: str, room: str, body: bytes, msg_id: str | None = None
    ) -> PublishResult:
        """Publish to every subscriber of the room; raises :class:`BrokerUnavailable`."""

    async def close(self) -> None:
        """Drop every subscription."""
