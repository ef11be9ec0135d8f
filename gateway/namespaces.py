"""The namespaces a gateway serves and their middleware chains, declared in one place.

``/`` is an authenticated connection and nothing else; ``/chat`` and ``/notifications`` are
durable; ``/live-updates`` is ephemeral. Every chain is ordered: authenticate on CONNECT;
rate limit, known event, schema on every EVENT, then the event's handler. Schemas are JSON
files in ``gateway/schemas/``.

Operators add their own events without Python: a schema file ``<dir>/<namespace>/<event>.json``
in the directory named by ``SB_EVENTS_DIR`` (``<namespace>`` is ``root``, ``chat``,
``notifications`` or ``live-updates``) makes ``<event>`` known there. Its payload must have a
``room`` the sender has joined; it is validated, sanitised as the schema marks, rate limited
like chat, and relayed to the room's members with ``from`` added (not logged).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from gateway import handlers
from gateway.middleware import authenticate, known_event, rate_limit, validate_schema
from gateway.pipeline import EventSpec, LimitClass, Namespace
from shared.presence_wire import PRESENCE_NAMESPACES
from shared.protocol import events
from shared.schemas import compile_schema
from shared.subjects import namespace_token

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
    events.ROOM_PRESENCE: EventSpec(handlers.presence, LimitClass.REQUEST, _ROOM),
}

__all__ = ["NAMESPACES", "PRESENCE_NAMESPACES", "build", "custom_events"]

CUSTOM_EVENT_RE = re.compile(r"[A-Za-z0-9_:@-]{1,64}")


def custom_events(directory: Path, nsp: str) -> dict[str, EventSpec]:
    """The operator's events for ``nsp``: one schema file each. Raises ``ValueError`` naming
    the file for an event name that is invalid, reserved or built in."""
    folder = directory / namespace_token(nsp)
    found: dict[str, EventSpec] = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        name = path.stem
        if not CUSTOM_EVENT_RE.fullmatch(name) or name in events.RESERVED or (
                name in events.CLIENT_EVENTS | events.SERVER_EVENTS):
            raise ValueError(f"{path}: {name!r} cannot be a custom event name")
        found[name] = EventSpec(handlers.relay(name), LimitClass.CHAT, compile_schema(path))
    return found


def build(events_dir: Path | None = None) -> MappingProxyType[str, Namespace]:
    """The namespaces, with the operator's events from ``events_dir`` added."""
    if events_dir is None:
        return NAMESPACES
    built = {}
    for nsp, namespace in NAMESPACES.items():
        extra = custom_events(events_dir, nsp)
        built[nsp] = replace(namespace, events=MappingProxyType({**extra, **namespace.events}))
    return MappingProxyType(built)


NAMESPACES: MappingProxyType[str, Namespace] = MappingProxyType({
    "/": Namespace("/", durable=False, connect_chain=CONNECT_CHAIN, event_chain=EVENT_CHAIN),
    "/chat": Namespace("/chat", durable=True, connect_chain=CONNECT_CHAIN,
                       event_chain=EVENT_CHAIN, events=MappingProxyType(CHAT_EVENTS)),
    "/notifications": Namespace("/notifications", durable=True, connect_chain=CONNECT_CHAIN,
                                event_chain=EVENT_CHAIN),
    "/live-updates": Namespace("/live-updates", durable=False, connect_chain=CONNECT_CHAIN,
                               event_chain=EVENT_CHAIN, events=MappingProxyType(ROOM_EVENTS)),
})
