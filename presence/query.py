"""``room:presence``: a request for a room's members, answered from the replica's own state.

Every replica holds the whole view, so any one of the queue group answers; one that has not
restored the bucket yet says ``unavailable`` rather than an empty room.
"""

from __future__ import annotations

from typing import Any

import orjson

from presence.state import PresenceState
from shared.namespaces import BUILT_IN, DEFAULT_PRESENCE_NAMESPACE
from shared.presence_wire import room_key
from shared.protocol.errors import ErrorCode, error_ack
from shared.subjects import is_valid_room_name


def members_answer(raw: bytes, state: PresenceState, ready: bool, limit: int,
                   namespaces: frozenset[str] = BUILT_IN.presence) -> dict[str, Any]:
    """``{"namespace", "room"}`` → ``{ok, room, users, count, truncated}`` (at most ``limit``
    users, sorted; ``count`` is exact). ``namespaces`` are those with presence in the
    service's loaded table."""
    try:
        request = orjson.loads(raw)
    except orjson.JSONDecodeError:
        request = None
    if not isinstance(request, dict):
        return error_ack(ErrorCode.BAD_REQUEST, "expected a JSON object {namespace, room}")
    nsp, room = request.get("namespace", DEFAULT_PRESENCE_NAMESPACE), request.get("room")
    if not isinstance(nsp, str) or nsp not in namespaces:
        return error_ack(ErrorCode.BAD_REQUEST, "presence is kept for namespaces "
                         + ", ".join(sorted(namespaces)) + " only")
    if not is_valid_room_name(room):
        return error_ack(ErrorCode.BAD_REQUEST, "room must be 1-128 characters of [A-Za-z0-9_:@-]")
    assert isinstance(room, str)
    if not ready:
        return error_ack(ErrorCode.UNAVAILABLE, "presence is starting; try again")
    members = sorted(state.members(room_key(nsp, room)))
    return {"ok": True, "room": room, "users": members[:limit], "count": len(members),
            "truncated": len(members) > limit}

