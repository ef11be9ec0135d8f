"""The broker boundary between a gateway and the rest of the cluster, split by what each side
needs: the room log and the inbox (:class:`shared.room_log.RoomLog`, :class:`Inbox`, which
the router uses too) and the fan-out subscription (:class:`Subscriptions`, the gateway's
alone). :class:`Broker` is all three, as the gateway holds them.

Gateways know rooms, never subjects. A broker subscribes a room while the gateway has local
members and hands every message of the subscribed rooms to one *sink*, synchronously and in
the order the bus delivered them (for a durable namespace that is the log's order), so the
gateway can keep one ordered feed per namespace. Durable namespaces have a log: publishes are
idempotent by message id and answer the message's sequence, deliveries carry ``seq`` and the
room's previous sequence ``prev``, and the log can be read back by room for gap repair,
replay and history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from shared.room_log import Done as Done
from shared.room_log import Inbox, RoomLog
from shared.room_log import LogUnavailable as BrokerUnavailable
from shared.room_log import PublishResult as PublishResult
from shared.room_log import Stored as Stored

__all__ = ["Broker", "BrokerUnavailable", "Delivery", "Done", "PublishResult", "Sink",
           "Stored", "Subscriptions"]


@dataclass(frozen=True, slots=True)
class Delivery:
    nsp: str
    room: str
    body: bytes
    seq: int | None = None
    prev: int | None = None


Sink = Callable[[Delivery], None]


class Subscriptions(Protocol):
    """The fan-out side: a gateway's rooms with local members."""

    def attach(self, sink: Sink) -> None:
        """Where deliveries go: called once, before any subscribe."""

    async def subscribe(self, nsp: str, room: str) -> None:
        """Once this returns, every message published to the room afterwards, by any
        gateway, reaches the sink once and in publish order (a no-op if subscribed)."""

    async def unsubscribe(self, nsp: str, room: str) -> None:
        """Stop deliveries for the room (a no-op for a room not subscribed)."""

    async def close(self) -> None:
        """Drop every subscription."""


class Broker(Subscriptions, RoomLog, Inbox, Protocol):
    """Everything a gateway asks of the bus."""
