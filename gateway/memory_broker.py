"""An in-process broker: the reference the NATS broker is held to by the contract suite, and
the bus the fan-out and replay logic are unit-tested on.

It keeps a log per durable namespace with what the JetStream stream gives: one sequence for
the whole namespace, a per-room previous sequence on every delivery, and de-duplication by
message id.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.broker import Delivery, Done, PublishResult, Sink, Stored
from shared.namespaces import BUILT_IN


@dataclass
class _Log:
    entries: list[tuple[int, str, bytes]] = field(default_factory=list)
    last_by_room: dict[str, int] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    first: int = 1

    def append(self, room: str, body: bytes, msg_id: str | None) -> tuple[int, int, bool]:
        if msg_id is not None and msg_id in self.ids:
            return self.ids[msg_id], 0, True
        seq = self.first + len(self.entries)
        prev = self.last_by_room.get(room, 0)
        self.entries.append((seq, room, body))
        self.last_by_room[room] = seq
        if msg_id is not None:
            self.ids[msg_id] = seq
        return seq, prev, False

    def trim(self, before: int) -> None:
        """Forget messages below ``before`` (what retention limits do to a stream)."""
        self.entries = [entry for entry in self.entries if entry[0] >= before]
        self.first = before


class MemoryBus:
    """What NATS is to several gateways: routes a room's messages to every subscriber."""

    def __init__(self, durable: frozenset[str] = BUILT_IN.durable) -> None:
        self.durable = durable
        self.subscribers: dict[tuple[str, str], list[MemoryBroker]] = {}
        self.logs: dict[str, _Log] = {}
        self.inboxes: dict[str, list[Stored]] = {}
        self.inbox_seq = 0

    def log(self, nsp: str) -> _Log:
        return self.logs.setdefault(nsp, _Log())


class MemoryBroker:
    def __init__(self, bus: MemoryBus) -> None:
        self._bus = bus
        self._sink: Sink | None = None

    def attach(self, sink: Sink) -> None:
        self._sink = sink

    async def subscribe(self, nsp: str, room: str) -> None:
        subscribers = self._bus.subscribers.setdefault((nsp, room), [])
        if self not in subscribers:
            subscribers.append(self)

    async def unsubscribe(self, nsp: str, room: str) -> None:
        subscribers = self._bus.subscribers.get((nsp, room), [])
        if self in subscribers:
            subscribers.remove(self)
        if not subscribers:
            self._bus.subscribers.pop((nsp, room), None)

    async def publish(
        self, nsp: str, room: str, body: bytes, msg_id: str | None = None, logged: bool = False
    ) -> PublishResult:
        return self._deliver(nsp, room, body, msg_id, logged)

    def _deliver(self, nsp: str, room: str, body: bytes, msg_id: str | None,
                 logged: bool) -> PublishResult:
        seq = prev = None
        if logged and nsp in self._bus.durable:
            seq, prev, duplicate = self._bus.log(nsp).append(room, body, msg_id)
            if duplicate:
                return PublishResult(seq, True)
        for broker in list(self._bus.subscribers.get((nsp, room), [])):
            if broker._sink is not None:
                broker._sink(Delivery(nsp, room, body, seq, prev))
        return PublishResult(seq, False)

    def begin_publish(
        self, nsp: str, room: str, body: bytes, msg_id: str | None, logged: bool, done: Done
    ) -> None:
        done(self._deliver(nsp, room, body, msg_id, logged))

    async def last_seq(self, nsp: str, room: str) -> int:
        return self._bus.log(nsp).last_by_room.get(room, 0)

    async def read(self, nsp: str, room: str, after: int, upto: int, limit: int) -> list[Stored]:
        found = [Stored(seq, body) for seq, r, body in self._bus.log(nsp).entries
                 if r == room and after < seq <= upto]
        return found[:limit]

    async def prev_of(self, nsp: str, room: str, seq: int) -> int:
        earlier = [s for s, r, _ in self._bus.log(nsp).entries if r == room and s < seq]
        return earlier[-1] if earlier else 0

    async def first_seq(self, nsp: str) -> int:
        return self._bus.log(nsp).first

    async def store_inbox(self, user: str, body: bytes, msg_id: str | None = None) -> None:
        self._bus.inbox_seq += 1
        self._bus.inboxes.setdefault(user, []).append(Stored(self._bus.inbox_seq, body))

    async def take_inbox(self, user: str) -> list[Stored]:
        return list(self._bus.inboxes.get(user, []))

    async def clear_inbox(self, user: str, upto: int) -> None:
        kept = [m for m in self._bus.inboxes.get(user, []) if m.seq > upto]
        self._bus.inboxes[user] = kept

    async def close(self) -> None:
        for subscribers in self._bus.subscribers.values():
            if self in subscribers:
                subscribers.remove(self)
