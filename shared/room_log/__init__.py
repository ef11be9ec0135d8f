"""The room log: what every service knows of the durable namespaces' JetStream streams.

Gateways and the router both publish into it and the gateways read it back, so its stream
names, configurations, message ids, errors, result types and the one setup function live
here, not in any service: :mod:`shared.room_log.streams` (configuration and setup),
:mod:`shared.room_log.publisher` (the logged-publish fast path),
:mod:`shared.room_log.nats_log` (the NATS implementation of the interfaces below),
:mod:`shared.room_log.paging` (``room:history`` pages read in batches).

The two interfaces below state what must hold; one contract suite checks them
(``tests/unit/test_broker_contract.py``). The gateway's broker adds the fan-out subscription
on top of both; the router needs only these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from shared.protocol.names import encode_id, encode_token


class LogUnavailable(Exception):
    """NATS could not take or confirm the operation; the client may retry."""


@dataclass(frozen=True, slots=True)
class PublishResult:
    seq: int | None = None
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Stored:
    """One message read back from a room's log (or a user's inbox)."""

    seq: int
    body: bytes


Done = Callable[[PublishResult | None], None]


def client_message_id(sub: str, key: str) -> str:
    """The ``Nats-Msg-Id`` of a client's ``message:send``: its user and idempotency key, so
    a retry of the same send within the duplicate window is stored once."""
    return f"{encode_token(sub)}.{encode_id(key)}"


def inbox_message_id(user: str, seq: int) -> str:
    """The ``Nats-Msg-Id`` of a kept message moved into the user's room log: two sockets of
    one user connecting at the same moment move it once."""
    return f"inbox.{encode_token(user)}.{seq}"


def api_message_id(room: str, key: str) -> str:
    """The ``Nats-Msg-Id`` of a server API publish with an idempotency key."""
    return f"api:{encode_token(room)}:{key}"


class RoomLog(Protocol):
    """Publishing to a room, and reading a durable namespace's log back by room."""

    async def publish(
        self, nsp: str, room: str, body: bytes, msg_id: str | None = None, logged: bool = False
    ) -> PublishResult:
        """Publish to every subscriber of the room. ``logged`` appends to the namespace's log
        first (idempotent by ``msg_id`` within the duplicate window). Raises
        :class:`LogUnavailable`."""

    def begin_publish(
        self, nsp: str, room: str, body: bytes, msg_id: str | None, logged: bool, done: Done
    ) -> None:
        """Send a publish now, without awaiting: one client can have several publishes in
        flight, stored in the order they were begun. ``done`` gets the result exactly once
        (``None`` when it could not be confirmed), possibly before this returns. Raises
        :class:`LogUnavailable` (and never calls ``done``) if nothing could be sent."""

    async def last_seq(self, nsp: str, room: str) -> int:
        """The sequence of the room's last logged message, 0 if none."""

    async def read(self, nsp: str, room: str, after: int, upto: int, limit: int) -> list[Stored]:
        """The room's logged messages with ``after < seq <= upto``, oldest first, at most
        ``limit``."""

    async def prev_of(self, nsp: str, room: str, seq: int) -> int:
        """The sequence of the room's last logged message before ``seq``, 0 if none."""

    async def first_seq(self, nsp: str) -> int:
        """The oldest sequence the namespace's log still holds (1 for a fresh log)."""


class Inbox(Protocol):
    """Messages kept for users who were offline (the inbox namespace's)."""

    async def store_inbox(self, user: str, body: bytes, msg_id: str | None = None) -> None:
        """Keep a message for an offline user (bounded by count and age); ``msg_id``
        de-duplicates retries within the duplicate window. Raises :class:`LogUnavailable`."""

    async def take_inbox(self, user: str) -> list[Stored]:
        """The user's kept messages, oldest first; :meth:`clear_inbox` once delivered."""

    async def clear_inbox(self, user: str, upto: int) -> None:
        """Forget the user's kept messages up to sequence ``upto``."""
