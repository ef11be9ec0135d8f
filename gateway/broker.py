"""The broker boundary between a gateway and the rest of the cluster.

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


class BrokerUnavailable(Exception):
    """The broker could not take or confirm the operation; the client may retry."""


@dataclass(frozen=True, slots=True)
class Delivery:
    nsp: str
    room: str
    body: bytes
    seq: int | None = None
    prev: int | None = None


@dataclass(frozen=True, slots=True)
class PublishResult:
    seq: int | None = None
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Stored:
    """One message read back from a room's log."""

    seq: int
    body: bytes


Sink = Callable[[Delivery], None]
Done = Callable[[PublishResult | None], None]


class Broker(Protocol):
    def attach(self, sink: Sink) -> None:
        """Where deliveries go: called once, before any subscribe."""

    async def subscribe(self, nsp: str, room: str) -> None:
        """Once this returns, every message published to the room afterwards, by any
        gateway, reaches the sink once and in publish order (a no-op if subscribed)."""

    async def unsubscribe(self, nsp: str, room: str) -> None:
        """Stop deliveries for the room (a no-op for a room not subscribed)."""

    async def publish(
        self, nsp: str, room: str, body: bytes, msg_id: str | None = None, logged: bool = False
    ) -> PublishResult:
        """Publish to every subscriber of the room. ``logged`` appends to the namespace's log
        first (idempotent by ``msg_id`` within the duplicate window). Raises
        :class:`BrokerUnavailable`."""

    def begin_publish(
        self, nsp: str, room: str, body: bytes, msg_id: str | None, logged: bool, done: Done
    ) -> None:
        """Send a publish now, without awaiting: one client can have several publishes in
        flight, stored in the order they were begun. ``done`` gets the result exactly once
        (``None`` when it could not be confirmed), possibly before this returns. Raises
        :class:`BrokerUnavailable` (and never calls ``done``) if nothing could be sent."""

    async def last_seq(self, nsp: str, room: str) -> int:
        """The sequence of the room's last logged message, 0 if none."""

    async def read(self, nsp: str, room: str, after: int, upto: int, limit: int) -> list[Stored]:
        """The room's logged messages with ``after < seq <= upto``, oldest first, at most
        ``limit``."""

    async def prev_of(self, nsp: str, room: str, seq: int) -> int:
        """The sequence of the room's last logged message before ``seq``, 0 if none."""

    async def first_seq(self, nsp: str) -> int:
        """The oldest sequence the namespace's log still holds (1 for a fresh log)."""

    async def store_inbox(self, user: str, body: bytes, msg_id: str | None = None) -> None:
        """Keep a message for an offline user (bounded by count and age); ``msg_id``
        de-duplicates retries within the duplicate window."""

    async def take_inbox(self, user: str) -> list[Stored]:
        """The user's kept messages, oldest first; :meth:`clear_inbox` once delivered."""

    async def clear_inbox(self, user: str, upto: int) -> None:
        """Forget the user's kept messages up to sequence ``upto``."""

    async def close(self) -> None:
        """Drop every subscription."""

