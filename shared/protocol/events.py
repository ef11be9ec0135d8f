"""Event names of the public contract.

Handlers refer to these constants, never to string literals; ``web/events.js`` carries the
same names for the demo page and a test keeps the two files in sync.
"""

from __future__ import annotations

from typing import Final

# client -> server (all take an ack)
ROOM_JOIN: Final = "room:join"
ROOM_LEAVE: Final = "room:leave"
MESSAGE_SEND: Final = "message:send"
ROOM_HISTORY: Final = "room:history"
ROOM_PRESENCE: Final = "room:presence"
TYPING_START: Final = "typing:start"
TYPING_STOP: Final = "typing:stop"

# server -> client
MESSAGE_RECEIVED: Final = "message:received"
PRESENCE_UPDATE: Final = "presence:update"
REQUEST_ERROR: Final = "request:error"

CLIENT_EVENTS: Final = frozenset(
    {ROOM_JOIN, ROOM_LEAVE, MESSAGE_SEND, ROOM_HISTORY, ROOM_PRESENCE, TYPING_START, TYPING_STOP}
)
SERVER_EVENTS: Final = frozenset(
    {MESSAGE_RECEIVED, PRESENCE_UPDATE, TYPING_START, TYPING_STOP, REQUEST_ERROR}
)

# Socket.IO reserves these; a client must never be sent one as an event name.
RESERVED: Final = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)
