"""Per-room prev chains and the delivery frontier of one durable namespace on one gateway.

The stream's RePublish gives every live message its room's previous sequence (``prev``); a
gateway that holds the last sequence it delivered for a room knows exactly what it missed
(the verdict is :mod:`shared.chain`'s): a gap to fetch from the log before going on, or a
duplicate. Rooms are tracked only while subscribed; a re-subscribed room starts a fresh chain.
The frontier (highest live sequence delivered) and the rooms lagging behind it while a gap is
repaired make the recovery offset written with every event (:mod:`shared.protocol.offsets`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.chain import Verdict, observe
from shared.protocol.offsets import encode_offset


@dataclass(slots=True)
class RoomChains:
    """``last``: last sequence delivered per subscribed room. ``frontier``: the highest live
    sequence delivered (live messages arrive in stream order). ``positions``: rooms whose
    delivered position differs from the frontier because a repair delivered them out of band.
    """

    last: dict[str, int] = field(default_factory=dict)
    frontier: int = 0
    positions: dict[str, int] = field(default_factory=dict)

    def observe(self, room: str, seq: int, prev: int) -> Verdict:
        """What to do with a live message before delivering it (:func:`shared.chain.observe`
        on the room's chain; a room not subscribed has none)."""
        return observe(self.last.get(room), seq, prev)

    def delivered_live(self, room: str, seq: int) -> None:
        self.last[room] = seq
        self.positions.pop(room, None)
        if seq > self.frontier:
            passed, self.frontier = self.frontier, seq
            for other, position in list(self.positions.items()):
                if passed < position <= seq:  # was ahead, the frontier caught up
                    del self.positions[other]

    def delivered_repair(self, room: str, seq: int) -> None:
        """A message fetched from the log was delivered: the room moves on its own."""
        self.last[room] = seq
        self.positions[room] = seq

    def repair_done(self, room: str) -> None:
        """Every message of ``room`` that existed when the repair began is delivered; later
        ones have sequences above today's frontier, so the room is no longer behind it."""
        if self.positions.get(room, self.frontier) <= self.frontier:
            self.positions.pop(room, None)

    def start(self, room: str, position: int) -> None:
        """Begin a room's chain at its last stored message when it is subscribed."""
        self.last.setdefault(room, position)

    def forget(self, room: str) -> None:
        self.last.pop(room, None)
        self.positions.pop(room, None)

    def offset(self) -> str:
        return encode_offset(self.frontier, self.positions)
