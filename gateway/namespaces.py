"""The namespaces a gateway serves and their middleware chains, built from the namespace
table the gateway loaded at start-up (:mod:`shared.namespaces`, with the namespaces of
``SB_NAMESPACES_FILE``): which namespaces exist, which are durable and which built-in events
each serves come from there; the handlers, limit classes and schemas of the built-in events
are the gateway's own, so a declared namespace's events run through the same chains. Every
chain is ordered: authenticate on CONNECT; rate limit, known event, schema on every EVENT,
then the event's handler. Schemas are JSON files in ``gateway/schemas/``.

Operators add their own events without Python: a schema file ``<dir>/<namespace>/<event>.json``
in the directory named by ``SB_EVENTS_DIR`` (``<namespace>`` is ``root``, ``chat``,
``notifications``, ``live-updates`` or a declared namespace's name without its ``/``) makes
``<event>`` known there. Its payload must have a ``room`` the sender has joined; it is
validated, sanitised as the schema marks, rate limited like chat, and relayed to the room's
members with ``from`` added (not logged).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

from gateway import handlers
from gateway.limits import LimitClass
from gateway.middleware import (
    EventSpec,
    Namespace,
    authenticate,
    known_event,
    rate_limit,
    validate_schema,
)
from shared.namespaces import BUILT_IN, NamespaceSpec, NamespaceTable, builtin_events
from shared.protocol import events
from shared.schemas import compile_schema
from shared.subjects import namespace_token

SCHEMAS = Path(__file__).with_name("schemas")
_ROOM = compile_schema(SCHEMAS / "room.json")
_MESSAGE = compile_schema(SCHEMAS / "message_send.json")
_HISTORY = compile_schema(SCHEMAS / "room_history.json")

CONNECT_CHAIN = (authenticate,)
EVENT_CHAIN = (rate_limit, known_event, validate_schema)

BUILTIN_EVENTS = {
    events.ROOM_JOIN: EventSpec(handlers.join, LimitClass.REQUEST, _ROOM),
    events.ROOM_LEAVE: EventSpec(handlers.leave, LimitClass.REQUEST, _ROOM),
    events.MESSAGE_SEND: EventSpec(handlers.send_message, LimitClass.CHAT, _MESSAGE),
    events.TYPING_START: EventSpec(handlers.typing_start, LimitClass.CHAT, _ROOM),
    events.TYPING_STOP: EventSpec(handlers.typing_stop, LimitClass.CHAT, _ROOM),
    events.ROOM_HISTORY: EventSpec(handlers.history, LimitClass.REQUEST, _HISTORY),
    events.ROOM_PRESENCE: EventSpec(handlers.presence, LimitClass.REQUEST, _ROOM),
}

__all__ = ["NAMESPACES", "build", "custom_events"]

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


def build(events_dir: Path | None = None,
          table: NamespaceTable = BUILT_IN) -> MappingProxyType[str, Namespace]:
    """The namespaces of ``table``, with the operator's events from ``events_dir`` added."""
    built = {name: namespace_of(spec) for name, spec in table.items()}
    if events_dir is not None:
        for nsp, namespace in built.items():
            extra = custom_events(events_dir, nsp)
            built[nsp] = replace(namespace,
                                 events=MappingProxyType({**extra, **namespace.events}))
    return MappingProxyType(built)


def namespace_of(spec: NamespaceSpec) -> Namespace:
    """The gateway's namespace for one table entry: its built-in events, the common chains."""
    served = builtin_events(spec)
    return Namespace(spec.name, durable=spec.durable, connect_chain=CONNECT_CHAIN,
                     event_chain=EVENT_CHAIN, events=MappingProxyType(
                         {name: s for name, s in BUILTIN_EVENTS.items() if name in served}),
                     spec=spec)


NAMESPACES = build()
"""The built-in four's chains, for tests and benchmarks; a gateway serves
``build(events_dir, settings.namespaces)``."""
