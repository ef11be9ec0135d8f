"""The presence store: what one replica writes and what every replica follows.

The interface states what every implementation guarantees (as centrifuge's ``presence.go``
does for its managers), because the service's correctness rests on exactly these properties:
records commute (newest wins by sequence, whatever the order of writers), every follower sees
the changes in one order (so replicas folding them agree on every event's owner), and keys
with a TTL disappear on their own (a dead replica or gateway needs nobody to clean up after
it). :class:`presence.nats_store.NatsPresenceStore` is the cluster's store (one NATS KV
bucket), :class:`presence.memory_store.MemoryPresenceStore` the in-process one for tests; one
contract suite (``tests/unit/test_presence_store_contract.py``) holds both to this page.

Keys, as :class:`Change` names them (``kind``, ``parts``):

- ``c`` (gateway, boot, conn): a socket's latest :class:`~shared.presence_wire.SocketRecord`;
- ``t`` (room key, user): the latest :class:`~shared.presence_wire.TypingNotice`;
- ``g`` (gateway,): the gateway's latest :class:`~shared.presence_wire.GatewayBoot`;
- ``r`` (replica,): a replica's liveness, ``b"1"`` while it beats, ``b"bye"`` as it leaves.

Values are the notices encoded by :func:`shared.presence_wire.encode`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from shared.presence_wire import GatewayBoot, SocketRecord, TypingNotice

ALIVE = b"1"
BYE = b"bye"
LEAVE_TTL_S = 1.0
"""How long a replica's ``bye`` stays before it expires like any liveness key."""


@dataclass(frozen=True, slots=True)
class Change:
    """One store change as a replica sees it; ``value`` is ``None`` for a delete/expiry."""

    kind: str
    parts: tuple[str, ...]
    value: bytes | None


def ttl_seconds(seconds: float) -> float:
    """The TTL a store applies for ``seconds``: whole seconds, at least one (JetStream's
    per-message TTL granularity; the memory store applies the same so tests see the same)."""
    return float(max(1, round(seconds)))


class PresenceStore(Protocol):
    """What a presence store guarantees. Every method may raise when the store cannot be
    reached; nothing is half-written then except as stated."""

    async def store_record(self, record: SocketRecord) -> bool:
        """Store ``record`` unless one of the same socket with an equal or higher ``seq`` is
        there; ``False`` when it was stale. Holds under concurrent writers: whatever the
        interleaving, the stored record ends as the highest ``seq`` written. A closed record
        (``alive=False``, a tombstone) expires after the store's tombstone TTL; a live one
        never expires."""
        ...

    async def store_typing(self, notice: TypingNotice) -> None:
        """Last write wins per (room, user); expires after twice the typing TTL."""
        ...

    async def store_boot(self, boot: GatewayBoot) -> None:
        """Last write wins per gateway; never expires."""
        ...

    async def beat(self, replica: str, ttl: float) -> None:
        """Put ``b"1"`` under the replica's key, expiring :func:`ttl_seconds` of ``ttl`` after
        this write unless beaten again. Followers see every beat."""
        ...

    async def leave(self, replica: str) -> None:
        """Put ``b"bye"`` under the replica's key (a clean exit, not a death); it expires
        after :data:`LEAVE_TTL_S`."""
        ...

    async def drop_instance(self, gateway: str, boot: str) -> int:
        """Delete every record of one gateway run (followers see each as a delete) and
        return how many there were; other runs' records stay."""
        ...

    def follow(self) -> AsyncIterator[Change | None]:
        """Every key's current value (keys already deleted or expired may also appear, with
        ``None``), then ``None`` (caught up), then every later change — writes, deletes,
        expiries — in the store's one order, the same for every follower."""
        ...
