"""The session core's answers to the shell's I/O: what a join, a publish, a history page or a
presence query came back with, worded as the client's ack or error.

Stateless beyond the socket the result names, so :class:`~gateway.session.Session` takes
them as a base class and the shell feeds every result to the one session object.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.actions import (
    Action,
    Announce,
    History,
    Join,
    JoinFailure,
    NamespaceSocket,
    PresenceQuery,
    Publish,
    Recovered,
    SendText,
    TypingChange,
)
from gateway.broker import PublishResult
from gateway.replies import (
    Failure,
    acknowledge,
    connect_reply,
    emit_frames,
    failed,
    history_answer,
    io_failed,
    too_many_connections,
)
from shared.protocol.errors import ErrorCode
from shared.protocol.events import ROOM_HISTORY, ROOM_JOIN, ROOM_PRESENCE, TYPING_START, TYPING_STOP
from shared.room_log.paging import Page


class Answers:
    """The I/O results that need nothing of the session but their own action (and its
    sockets, for a refused one)."""

    sockets: dict[str, NamespaceSocket]

    def opened(self, socket: NamespaceSocket, recovered: Recovered | None = None) -> list[Action]:
        """The socket is admitted, in its rooms and (durable) its session saved or, with
        ``recovered``, restored: it takes the session's ids and rooms, and gets its reply."""
        if recovered is not None:
            socket.pid, socket.sid = recovered.pid, recovered.sid
            socket.rooms.clear()
            socket.rooms.update(recovered.rooms)
        emits, socket.hook_emit = socket.hook_emit or [], None
        return [Announce(socket), SendText(connect_reply(socket)),
                *(frame for emit in emits for frame in emit_frames(socket.nsp, emit))]

    def refused(self, socket: NamespaceSocket) -> list[Action]:
        """The cluster-wide per-user limit refused the socket after its CONNECT."""
        if self.sockets.get(socket.nsp) is socket:
            del self.sockets[socket.nsp]
        return [too_many_connections(socket.nsp)]

    def joined(self, join: Join) -> list[Action]:
        """The room's messages reach the socket now (after any replay ``since`` asked for)."""
        join.socket.rooms.add(join.room)
        return [Announce(join.socket), *acknowledge(join.reply, {"ok": True, "room": join.room})]

    def join_failed(self, join: Join, why: JoinFailure) -> list[Action]:
        if why is JoinFailure.BACKLOG_TOO_LARGE:
            return io_failed(join.reply, ROOM_JOIN, ErrorCode.NOT_RECOVERABLE,
                              "backlog too large to replay; page it with room:history")
        return io_failed(join.reply, ROOM_JOIN, ErrorCode.UNAVAILABLE, "try again")

    def published(self, publish: Publish, result: PublishResult | None) -> list[Action]:
        """The broker's answer to a publish (``None``: not confirmed — not sent, refused, or
        its acknowledgement late; it may be stored, so the client retries with the same id,
        which the log de-duplicates)."""
        if result is None:
            return io_failed(publish.reply, None, ErrorCode.UNAVAILABLE,
                              "not confirmed, retry with the same id")
        if publish.message_id is None:
            return acknowledge(publish.reply, {"ok": True})
        return acknowledge(publish.reply, {"ok": True, "id": publish.message_id,
                                           "seq": result.seq, "duplicate": result.duplicate})

    def history_page(self, history: History, page: Page | None) -> list[Action]:
        """The log's page for ``room:history`` (``None``: nothing of the range is left)."""
        if page is None:
            return failed(history.reply, ROOM_HISTORY, Failure(
                ErrorCode.NOT_RECOVERABLE, "the log no longer reaches back there"))
        return acknowledge(history.reply, history_answer(page))

    def log_unavailable(self, request: History) -> list[Action]:
        """The log did not answer ``room:history``."""
        return io_failed(request.reply, ROOM_HISTORY, ErrorCode.UNAVAILABLE, "try again")

    def presence_answer(self, query: PresenceQuery,
                        members: dict[str, Any] | None) -> list[Action]:
        """The presence service's answer to ``room:presence`` (``None``: none came)."""
        if members is None:
            return io_failed(query.reply, ROOM_PRESENCE, ErrorCode.UNAVAILABLE,
                              "presence is not available; try again")
        return acknowledge(query.reply, members)

    def typing_routed(self, change: TypingChange) -> list[Action]:
        """The presence service took the typing notice (and sends the stop on silence)."""
        return acknowledge(change.reply, {"ok": True})

    def typing_unrouted(self, change: TypingChange) -> list[Action]:
        """No presence service (an in-memory gateway): the notice goes straight to the room."""
        name = TYPING_START if change.active else TYPING_STOP
        args = orjson.dumps([name, {"room": change.room, "user": change.socket.identity.sub}])
        return [Publish(change.socket, change.room, args, (), None, change.reply)]
