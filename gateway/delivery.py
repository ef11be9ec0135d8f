"""Delivery: one message framed once and handed to every local member of its room, without
awaiting any socket (a slow one is cut off by its outbox's byte budget, not waited for).

Most members get the very same bytes, built once; a member that is replayed to, ahead of
the frontier or without recovery gets frames built for it (:class:`Frames`), and one on hold
keeps what arrives until its replay is written (:class:`Member`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from gateway.chain import RoomChains
from gateway.outbox import Outbox
from gateway.rooms import RoomRegistry
from shared import envelope
from shared.metrics import GatewayMetrics
from shared.protocol.frames import event_frames, with_position
from shared.protocol.offsets import encode_offset

log = logging.getLogger(__name__)

SAMPLE = 8
"""One message in this many is timed and its delivery lag observed: the histograms keep their
shape, and the fan-out of the others costs two clock reads and a bucket search less."""
ALWAYS_TIMED = 64
"""A message for more local members than this is always timed: the clock costs nothing beside
its fan-out, and the slow messages are the ones the fan-out-time alert is about."""


class Frames:
    """One message's frames: with the live offset (what most members get, built at once),
    and, built only when a member needs them, without any offset (sockets that do not
    recover) or with a member's own offset (members ahead of the frontier)."""

    __slots__ = (
        "_args",
        "_attachments",
        "_nsp",
        "_plain",
        "_positions",
        "_prev",
        "_seq",
        "frontier",
        "with_offset",
    )

    def __init__(self, nsp: str, args: bytes, attachments: tuple[bytes, ...], seq: int | None,
                 prev: int, offset: str | None, frontier: int,
                 positions: dict[str, int] | None) -> None:
        self._nsp, self._args, self._attachments = nsp, args, attachments
        self._seq, self._prev = seq, prev
        self.frontier, self._positions = frontier, positions
        self._plain: bytes | None = None
        if seq is None:
            self.with_offset = self._plain = event_frames(nsp, args, attachments)
        else:
            self.with_offset = event_frames(nsp, with_position(args, seq, prev, offset),
                                            attachments)

    @property
    def positioned(self) -> bool:
        return self._seq is not None

    def plain(self) -> bytes:
        if self._plain is None:
            assert self._seq is not None
            self._plain = event_frames(
                self._nsp, with_position(self._args, self._seq, self._prev, None),
                self._attachments)
        return self._plain

    def own(self, base: int, ahead: dict[str, int]) -> bytes:
        assert self._seq is not None and self._positions is not None
        offset = encode_offset(max(self.frontier, base), {**self._positions, **ahead})
        return event_frames(self._nsp, with_position(self._args, self._seq, self._prev, offset),
                            self._attachments)


@dataclass(eq=False, slots=True)
class Member:
    """One namespace socket as the fan-out sees it.

    After a replay a member can be ahead of this gateway's frontier (it recovered here from a
    gateway that had delivered more, or it replayed a room up to the room's end). Until the
    live frontier passes it, the member's offsets are written for it alone (``base``, the
    frontier it brought, and ``ahead``, rooms replayed further) so its offset never moves back.
    """

    outbox: Outbox
    offsets: bool = True
    hold: list[tuple[str, int | None, int, Frames]] | None = None
    floors: dict[str, int] = field(default_factory=dict)
    base: int = 0
    ahead: dict[str, int] = field(default_factory=dict)

    def take(self, room: str, seq: int | None, frontier: int, frames: Frames) -> None:
        if self.hold is not None:
            self.hold.append((room, seq, frontier, frames))
            return
        if seq is not None and self.floors:
            floor = self.floors.get(room)
            if floor is not None:
                if seq <= floor:
                    return
                del self.floors[room]
        if not self.offsets:
            self.outbox.push(frames.plain())
            return
        if frames.positioned and (self.base or self.ahead):
            self.catch_up(frontier)
            if self.base or self.ahead:
                self.outbox.push(frames.own(self.base, self.ahead))
                return
        self.outbox.push(frames.with_offset)

    def catch_up(self, frontier: int) -> None:
        if self.base <= frontier:
            self.base = 0
        if self.ahead:
            self.ahead = {room: seq for room, seq in self.ahead.items() if seq > frontier}

    def release(self) -> None:
        """End a hold: what waited goes out, minus what a replay already carried."""
        held, self.hold = self.hold or [], None
        for item in held:
            self.take(*item)


def hand_out(members: Iterable[Member], room: str, seq: int | None, frames: Frames) -> None:
    """Push one message's frame to each member; most take the live frame as it is (the test
    inlines :meth:`Member.take`'s common case: a method call per delivery costs more)."""
    frontier, with_offset = frames.frontier, frames.with_offset
    for member in members:
        if member.hold is None and not member.floors and member.offsets \
                and not member.base and not member.ahead:
            member.outbox.push(with_offset)
        else:
            member.take(room, seq, frontier, frames)


class Writer:
    """One namespace's delivery to its local members: what a feed has put in order (live
    messages and repaired gaps alike) is written here, stamped with ``chains``' offsets."""

    def __init__(self, nsp: str, registry: RoomRegistry[Member], metrics: GatewayMetrics,
                 batch: int, chains: RoomChains) -> None:
        self.nsp = nsp
        self.registry = registry
        self.chains = chains
        self.written = 0
        self._batch = batch
        self._fanout_seconds = metrics.fanout_seconds
        self._fanout_in = metrics.fanout_in.labels(nsp)
        self._packets_out = metrics.packets_out.labels(nsp)

    async def write(self, room: str, body: bytes, seq: int | None, prev: int,
                    offset: str | None) -> None:
        """Frame one message once and hand it to every local member of the room, yielding
        between batches. The fan-out time is sampled (see ``SAMPLE``, ``ALWAYS_TIMED``)."""
        nsp = self.nsp
        self.written += 1
        members = self.registry.live((nsp, room))
        count = len(members)
        sampled = count > ALWAYS_TIMED or not self.written % SAMPLE
        started = time.perf_counter() if sampled else 0.0
        unpacked = envelope.unpack(body)
        if unpacked is None:
            log.warning("dropped a malformed fan-out message for namespace %s", nsp)
            return
        args, attachments = unpacked
        if seq is None:
            frames = Frames(nsp, args, attachments, None, 0, None, 0, None)
        else:
            chains = self.chains
            # The positions are copied: a member's own offset is written from this moment.
            frames = Frames(nsp, args, attachments, seq, prev, offset, chains.frontier,
                            dict(chains.positions))
        batch = self._batch
        if count <= batch:
            hand_out(members, room, seq, frames)
        else:
            snapshot = list(members)  # members may come and go while this yields
            for start in range(0, count, batch):
                if start:
                    await asyncio.sleep(0)
                hand_out(snapshot[start:start + batch], room, seq, frames)
        self._fanout_in.inc()
        self._packets_out.inc(count)
        if sampled:
            self._fanout_seconds.observe(time.perf_counter() - started)
