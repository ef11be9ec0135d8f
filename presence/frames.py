"""The frames presence publishes into rooms: ``presence:update`` and ``typing:start`` /
``typing:stop`` as the contract names them (``DESIGN.md``, server → client events).

Each frame is the Socket.IO event array ``[name, data]`` encoded once (compact JSON) and sent
to the room's fan-out subject as an ephemeral event, so every gateway forwards the same bytes.
"""

from __future__ import annotations

from typing import Any

import orjson

from presence.events import Event, RoomChange, RoomCount, UserStatus
from shared.presence_wire import split_room_key
from shared.protocol.events import PRESENCE_UPDATE, TYPING_START, TYPING_STOP

Frame = tuple[str, str, bytes]
"""``(namespace, room, encoded event)``."""


def frames(event: Event) -> list[Frame]:
    """One frame per room that hears ``event`` (a user's status goes to each room of its
    audience); room keys that are not rooms (never written by a gateway) yield nothing."""
    if isinstance(event, UserStatus):
        body = orjson.dumps([PRESENCE_UPDATE, {"user": event.user, "status": event.status}])
        rooms = [split_room_key(key) for key in sorted(event.rooms)]
        return [(r[0], r[1], body) for r in rooms if r is not None]
    target = split_room_key(event.room)
    if target is None:
        return []
    nsp, room = target
    if isinstance(event, RoomChange):
        data: dict[str, Any] = {"room": room, "user": event.user, "status": event.status}
        return [(nsp, room, orjson.dumps([PRESENCE_UPDATE, data]))]
    if isinstance(event, RoomCount):
        data = {"room": room, "count": event.count}
        return [(nsp, room, orjson.dumps([PRESENCE_UPDATE, data]))]
    name = TYPING_START if event.started else TYPING_STOP
    return [(nsp, room, orjson.dumps([name, {"room": room, "user": event.user}]))]


def update_kind(event: Event) -> str:
    """The metric label of an announced event (one of ``metrics.UPDATE_KINDS``)."""
    if isinstance(event, UserStatus | RoomChange):
        return event.status
    if isinstance(event, RoomCount):
        return "count"
    return "typing"
