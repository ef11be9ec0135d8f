"""The namespaces a gateway serves and their middleware chains, declared in one place.

``/`` is an authenticated connection and nothing else; ``/chat`` and ``/notifications`` are
durable; ``/live-updates`` is ephemeral. Every chain is ordered: authenticate on CONNECT;
rate limit, known event, schema on every EVENT, then the event's handler. Schemas are JSON
files in ``gateway/schemas/``.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from gateway import handlers
from gateway.middleware import authenticate, known_event, rate_limit, validate_schema
from gateway.pipeline import EventSpec, LimitClass, Namespace
from shared.protocol import events
from shared.schemas import compile_schema

SCHEMAS = Path(__file__).with_name("schemas")
_ROOM = compile_schema(SCHEMAS / "room.json")
_MESSAGE = compile_schema(SCHEMAS / "message_send.json")
_HISTORY = compile_schema(SCHEMAS / "room_history.json")

CONNECT_CHAIN = (authenticate,)
EVENT_CHAIN = (rate_limit, known_event, validate_schema)

ROOM_EVENTS = {
    events.ROOM_JOIN: EventSpec(handlers.join, LimitClass.REQUEST, _ROOM),
    events.ROOM_LEAVE: EventSpec(handlers.leave, LimitClass.REQUEST, _ROOM),
}
CHAT_EVENTS = {
    **ROOM_EVENTS,
    events.MESSAGE_SEND: EventSpec(handlers.send_message, LimitClass.CHAT, _MESSAGE),
    events.TYPING_START: EventSpec(handlers.typing_start, LimitClass.CHAT, _ROOM),
    events.TYPING_STOP: EventSpec(handlers.typing_stop, LimitClass.CHAT, _ROOM),
    events.ROOM_HISTORY: EventSpec(handlers.history, LimitClass.REQUEST, _HISTORY),
    events.ROOM_PRESENCE: EventSpec(
        handlers.not_yet("room presence"), LimitClass.REQUEST, _ROOM),
}

NAMESPACES: MappingProxyType[str, Namespace] = MappingProxyType({
    "/": Namespace("/", durable=False, connect_chain=CONNECT_CHAIN, event_chain=EVENT_CHAIN),
    "/chat": Namespace("/chat", durable=True, connect_chain=CONNECT_CHAIN,
                       event_chain=EVENT_CHAIN, events=MappingProxyType(CHAT_EVENTS)),
    "/notifications": Namespace("/notifications", durable=True, connect_chain=CONNECT_CHAIN,
                                event_chain=EVENT_CHAIN),
    "/live-updates": Namespace("/live-updates", durable=False, connect_chain=CONNECT_CHAIN,
                               event_chain=EVENT_CHAIN, events=MappingProxyType(ROOM_EVENTS)),
})
