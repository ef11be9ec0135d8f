"""Event handlers: validated payload in, actions (or a failure) out. No I/O here.

Handlers run after the namespace's event chain, so the payload already matches its schema;
what is left is the contract's rules: who may join what, membership before publishing,
sanitising and the attachment limit.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.actions import (
    Action,
    Announce,
    History,
    Join,
    Leave,
    PresenceQuery,
    Publish,
    TypingChange,
)
from gateway.middleware import EventContext
from gateway.replies import Failure, acknowledge
from shared.protocol.errors import ErrorCode
from shared.protocol.events import MESSAGE_RECEIVED, TYPING_START, TYPING_STOP
from shared.protocol.packets import deconstruct
from shared.subjects import USER_ROOM_PREFIX, is_valid_room_name, user_room


def _room_of(ctx: EventContext) -> str | Failure:
    room = ctx.payload.get("room")
    if not is_valid_room_name(room):
        return Failure(ErrorCode.BAD_REQUEST, "room must be 1-128 characters of [A-Za-z0-9_:@-]")
    assert isinstance(room, str)
    return room


def _joined_room(ctx: EventContext, doing: str) -> str | Failure:
    """The payload's room, which the socket must have joined to do this in it."""
    room = _room_of(ctx)
    if isinstance(room, Failure):
        return room
    if room not in ctx.socket.rooms:
        return Failure(ErrorCode.FORBIDDEN, f"join the room before {doing} it")
    return room


def _visible_room(ctx: EventContext) -> str | Failure:
    """The payload's room, which the socket must be in or allowed to join to read it."""
    room = _room_of(ctx)
    if isinstance(room, Failure):
        return room
    if room not in ctx.socket.rooms and not ctx.socket.identity.may_join(room):
        return Failure(ErrorCode.FORBIDDEN, "the token does not allow this room")
    return room


def join(ctx: EventContext) -> list[Action] | Failure:
    room = _room_of(ctx)
    if isinstance(room, Failure):
        return room
    socket = ctx.socket
    if room.startswith(USER_ROOM_PREFIX) and room != user_room(socket.identity.sub):
        return Failure(ErrorCode.FORBIDDEN, "user rooms are joined automatically")
    if room != user_room(socket.identity.sub) and not socket.identity.may_join(room):
        return Failure(ErrorCode.FORBIDDEN, "the token does not allow this room")
    if room not in socket.rooms and len(socket.rooms) >= ctx.limits.max_rooms:
        return Failure(ErrorCode.FORBIDDEN, f"at most {ctx.limits.max_rooms} rooms per socket")
    since = ctx.payload.get("since")
    if since is not None and not socket.durable:
        return Failure(ErrorCode.BAD_REQUEST, "since needs a durable namespace")
    if room in socket.rooms and since is None:
        return acknowledge(ctx.reply, {"ok": True, "room": room})  # nothing to do or replay
    return [Join(socket, room, ctx.reply, since)]


def leave(ctx: EventContext) -> list[Action] | Failure:
    room = _room_of(ctx)
    if isinstance(room, Failure):
        return room
    if room == user_room(ctx.socket.identity.sub):
        return Failure(ErrorCode.FORBIDDEN, "a socket stays in its own user room")
    if room not in ctx.socket.rooms:
        return acknowledge(ctx.reply, {"ok": True})
    ctx.socket.rooms.discard(room)  # the shell leaves the room's feed before the ack goes
    return [Announce(ctx.socket), Leave(ctx.socket, room, ctx.reply),
            *acknowledge(ctx.reply, {"ok": True})]


def send_message(ctx: EventContext) -> list[Action] | Failure:
    room = _joined_room(ctx, "sending to")
    if isinstance(room, Failure):
        return room
    payload: dict[str, Any] = ctx.payload
    attachment = payload.get("attachment")
    if attachment is not None and not isinstance(attachment, bytes):
        return Failure(ErrorCode.BAD_REQUEST, "attachment must be binary")
    if attachment is not None and len(attachment) > ctx.limits.attachment_max_bytes:
        return Failure(ErrorCode.TOO_LARGE,
                       f"attachment over {ctx.limits.attachment_max_bytes} bytes")
    text = payload["text"]  # sanitised by its schema (x-sanitize: text)
    if not text.strip() and attachment is None:
        return Failure(ErrorCode.BAD_REQUEST, "text is empty")
    message: dict[str, Any] = {
        "room": room,
        "id": payload["id"],
        "from": ctx.socket.identity.sub,
        "text": text,
        "ts": int(ctx.wall_clock() * 1000),
    }
    attachments: list[bytes] = []
    if attachment is not None:
        message["attachment"] = deconstruct(attachment, attachments)
    args = orjson.dumps([MESSAGE_RECEIVED, message])
    return [Publish(ctx.socket, room, args, tuple(attachments), payload["id"], ctx.reply,
                    logged=ctx.socket.durable)]


def typing(event: str) -> Any:
    """``typing:start`` / ``typing:stop`` reach the room's members as ``{room, user}``, through
    the presence service (which sends the stop when a typist goes quiet). Clients send
    ``typing:start`` on every keystroke; repeats within the coalescing interval are acked and
    go no further, so a keystroke stream is one notice per interval."""

    def handle(ctx: EventContext) -> list[Action] | Failure:
        room = _joined_room(ctx, "typing in")
        if isinstance(room, Failure):
            return room
        socket = ctx.socket
        if event == TYPING_START:
            last = socket.typing.get(room)
            if last is not None and ctx.now - last < ctx.limits.typing_coalesce_s:
                return acknowledge(ctx.reply, {"ok": True})
            socket.typing[room] = ctx.now
        else:
            socket.typing.pop(room, None)
        return [TypingChange(socket, room, event == TYPING_START, ctx.reply)]

    return handle


typing_start = typing(TYPING_START)
typing_stop = typing(TYPING_STOP)


def relay(event: str) -> Any:
    """An operator's event: relayed to the room's members as sent, with ``from`` added."""

    def handle(ctx: EventContext) -> list[Action] | Failure:
        if not isinstance(ctx.payload, dict):
            return Failure(ErrorCode.BAD_REQUEST, "payload must be an object with a room")
        room = _joined_room(ctx, "sending to")
        if isinstance(room, Failure):
            return room
        attachments: list[bytes] = []
        body = deconstruct([event, {**ctx.payload, "from": ctx.socket.identity.sub}],
                           attachments)
        return [Publish(ctx.socket, room, orjson.dumps(body), tuple(attachments), None,
                        ctx.reply)]

    return handle


def history(ctx: EventContext) -> list[Action] | Failure:
    """``room:history``: ``since`` reads forward (gap fill), ``before`` backward (scroll-back)."""
    room = _visible_room(ctx)
    if isinstance(room, Failure):
        return room
    payload = ctx.payload
    if payload.get("since") is not None and payload.get("before") is not None:
        return Failure(ErrorCode.BAD_REQUEST, "give since or before, not both")
    limit = payload.get("limit", HISTORY_DEFAULT_LIMIT)
    return [History(ctx.socket, room, ctx.reply, payload.get("since"), payload.get("before"),
                    limit)]


HISTORY_DEFAULT_LIMIT = 100


def presence(ctx: EventContext) -> list[Action] | Failure:
    """``room:presence``: members of a room the socket is in or may join."""
    room = _visible_room(ctx)
    if isinstance(room, Failure):
        return room
    return [PresenceQuery(ctx.socket, room, ctx.reply)]
