"""What a handler is given and what it gives back: the event context with its side effects,
the connect answer, the typed refusal and error, and the reply bodies built from them.

A handler never writes a reply itself: it returns (the ack, or an :class:`Accept`), raises
(:class:`Refuse`, :class:`HookError`) and calls the context's helpers; the reply is built here,
so every reply follows the contract whatever the handler did.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from client.worker_wire import EventRequest, dumps, error_reply, refusal
from shared.protocol.events import RESERVED
from shared.protocol.names import is_valid_room_name


class Refuse(Exception):
    """Raised by a connect handler: the socket gets CONNECT_ERROR ``{message, data}``
    (terminal for socket.io-client, so refuse only what a retry would not fix)."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def reply(self) -> dict[str, Any]:
        return refusal(self.message, self.data)


class HookError(Exception):
    """Raised by an event handler: the client's ack is ``{ok: false, error: {code, message,
    data?}}`` with ``code`` passed on unchanged (use the contract's codes, such as
    ``bad_request`` or ``forbidden``, or your own)."""

    def __init__(self, code: str, message: str, data: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.data = data

    def reply(self) -> dict[str, Any]:
        return error_reply(self.code, self.message, self.data)


def _room(room: str) -> str:
    if not is_valid_room_name(room):
        raise ValueError(f"{room!r} is not a room name (1-128 of [A-Za-z0-9_:@-])")
    return room


def _emitted(event: str, args: Sequence[Any]) -> list[Any]:
    if not isinstance(event, str) or not event or event in RESERVED:
        raise ValueError(f"{event!r} cannot be emitted (empty or reserved by Socket.IO)")
    return [event, *args]


@dataclass(slots=True)
class Accept:
    """A connect handler's answer. ``user`` sets the identity when no token gave one (and is
    then required); ``data`` is kept with the session and handed to every later event;
    ``rooms`` are the room patterns the client may join itself; ``join`` rooms joined now;
    ``emit`` events (``(event, *args)``) sent to the socket right after the CONNECT reply."""

    user: str | None = None
    data: Any = None
    rooms: Sequence[str] | None = None
    join: Sequence[str] = ()
    emit: Sequence[Sequence[Any]] = ()

    def reply(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": True}
        if self.user is not None:
            body["user"] = self.user
        if self.data is not None:
            body["data"] = self.data
        if self.rooms is not None:
            body["rooms"] = list(self.rooms)
        if self.join:
            body["join"] = [_room(room) for room in self.join]
        if self.emit:
            body["emit"] = [_emitted(item[0], item[1:]) for item in self.emit]
        return body


def accept(user: str | None = None, data: Any = None, rooms: Iterable[str] | None = None,
           join: Iterable[str] = (), emit: Iterable[Sequence[Any]] = ()) -> Accept:
    """:class:`Accept` with its lists taken from any iterables."""
    return Accept(user, data, None if rooms is None else list(rooms), list(join), list(emit))


@dataclass(slots=True)
class Event:
    """One client event as its handler sees it, and the side effects it asks for.

    The request's fields are attributes (``ev.user``, ``ev.sid``, ``ev.id``, ``ev.ack``,
    ``ev.data``...). Assigning ``ev.data`` (or changing it in place) replaces the session's
    data. The helpers queue side effects the gateway runs after the reply: join/leave, then
    publish, then the ack, then emit, then disconnect.
    """

    nsp: str
    event: str
    args: list[Any]
    ack: bool
    sid: str
    id: str
    user: str | None
    gateway: str
    data: Any = None
    _emit: list[list[Any]] = field(default_factory=list)
    _join: list[str] = field(default_factory=list)
    _leave: list[str] = field(default_factory=list)
    _publish: list[dict[str, Any]] = field(default_factory=list)
    _disconnect: bool = False
    _data_before: bytes = b"null"

    @classmethod
    def of(cls, request: EventRequest) -> Event:
        r = request
        return cls(r.nsp, r.event, r.args, r.ack, r.sid, r.id, r.user, r.gateway, r.data,
                   _data_before=dumps(r.data))

    def emit(self, event: str, *args: Any) -> None:
        """Send ``event`` with ``args`` to this socket only (not logged)."""
        self._emit.append(_emitted(event, args))

    def join(self, room: str) -> None:
        self._join.append(_room(room))

    def leave(self, room: str) -> None:
        self._leave.append(_room(room))

    def publish(self, room: str, event: str, data: dict[str, Any]) -> None:
        """Deliver ``event`` with ``data`` to the room's members on every gateway (logged in a
        durable namespace, where members get ``room``, ``seq`` and ``prev`` added)."""
        if not isinstance(data, dict):
            raise TypeError("published data must be an object (a dict)")
        _emitted(event, ())
        self._publish.append({"room": _room(room), "event": event, "data": data})

    def disconnect(self) -> None:
        """End this socket after the reply's other effects (a bare DISCONNECT: no recovery)."""
        self._disconnect = True

    def reply(self, result: Any) -> dict[str, Any]:
        """The reply for a handler that returned ``result``: ``None`` acks with no arguments,
        a tuple with several, anything else with one."""
        body: dict[str, Any] = {"ok": True}
        if self.ack:
            body["ack"] = ack_args(result)
        for key, value in (("join", self._join), ("leave", self._leave),
                           ("publish", self._publish), ("emit", self._emit)):
            if value:
                body[key] = value
        if dumps(self.data) != self._data_before:
            body["data"] = self.data
        if self._disconnect:
            body["disconnect"] = True
        return body


def ack_args(result: Any) -> list[Any]:
    """A handler's return value as the list of the client's ack arguments."""
    if result is None:
        return []
    if isinstance(result, tuple):
        return list(result)
    return [result]
