"""What the presence state says happened: the events a replica may announce.

They are values (frozen, compared by content) so that every replica, folding the same records,
computes equal events, and ownership (:mod:`presence.ownership`) and frame building
(:mod:`presence.frames`) can work on them without the state. Rooms are room keys
(``"<namespace> <room>"``, :func:`shared.presence_wire.room_key`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, slots=True)
class UserStatus:
    """``rooms`` is the audience: the rooms the user was announced in at that moment (a
    departure's ``left`` events may follow in the same tick and empty them)."""

    user: str
    status: Literal["online", "offline"]
    rooms: frozenset[str] = field(default=frozenset(), compare=False)


@dataclass(frozen=True, slots=True)
class RoomChange:
    room: str
    user: str
    status: Literal["joined", "left"]


@dataclass(frozen=True, slots=True)
class RoomCount:
    """A big room's summary: its member count stands in for per-user events."""

    room: str
    count: int


@dataclass(frozen=True, slots=True)
class Typing:
    room: str
    user: str
    started: bool


Event = UserStatus | RoomChange | RoomCount | Typing
