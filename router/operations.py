"""The server API's operations, on injected effects: a registry lookup, a broker publish,
a per-gateway kick request and a presence query. No HTTP, no NATS subjects: both front doors
call :meth:`execute` with a validated request, and tests call it with fakes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from router.answers import Answer, bad_request, failed, ok, unavailable
from router.requests import Kick, ListConnections, Publish, Request, RoomPresence, Send
from router.socket_emit import EmitToSocket, SocketEmitter, emit_to_socket
from shared.namespaces import INBOX_NAMESPACE
from shared.registry import ConnectionInfo
from shared.registry_kv import RegistryUnavailable
from shared.room_log import LogUnavailable, PublishResult

log = logging.getLogger(__name__)


class Lookup(Protocol):
    async def __call__(self, user: str) -> dict[str, ConnectionInfo]:
        """The user's connections on live gateways. Raises ``RegistryUnavailable``."""


class Publisher(Protocol):
    async def publish(
        self, nsp: str, room: str, body: bytes, msg_id: str | None = None, logged: bool = False
    ) -> PublishResult:
        """Publish to the room's members on every gateway. Raises ``LogUnavailable``."""

    async def store_inbox(self, user: str, body: bytes, msg_id: str | None = None) -> None:
        """Keep a ``/notifications`` message for an offline user; the gateway delivers it on
        the user's next connect. Raises ``LogUnavailable``."""


class Kicker(Protocol):
    async def __call__(self, gateway: str, user: str, reason: str | None) -> int | None:
        """Ask one gateway to kick the user: how many connections it closed, ``None`` if it
        did not answer. Never raises for a gateway that is gone."""


class PresenceUnavailable(Exception):
    """No presence replica answered (none running, or none in time)."""


class PresenceAsker(Protocol):
    async def __call__(self, namespace: str, room: str) -> object:
        """The presence service's reply to ``{"namespace", "room"}``, decoded (``None`` if it
        was not JSON). Raises ``PresenceUnavailable`` when no replica answered."""


def connections_in(live: dict[str, ConnectionInfo], namespace: str) -> int:
    """How many of the user's live connections have ``namespace`` (so got a send to it)."""
    return sum(1 for info in live.values() if namespace in info.namespaces)


def listing(live: dict[str, ConnectionInfo]) -> list[dict[str, Any]]:
    """The connections as the API lists them, oldest first."""
    ordered = sorted(live.items(), key=lambda item: (item[1].connected_at, item[0]))
    return [{"id": conn_id, **info.to_json()} for conn_id, info in ordered]


def presence_answer(request: RoomPresence, reply: object) -> Answer:
    """The API's answer from the presence service's reply: ``{ok, room, users, count,
    truncated}`` or ``{ok: false, error: {code, message}}``. A reply of any other shape is
    503 ``unavailable`` (a presence replica of another version, say), never a 500."""
    if not isinstance(reply, dict):
        return _unreadable(request, "not a JSON object")
    if reply.get("ok") is True:
        users, count, truncated = reply.get("users"), reply.get("count"), reply.get("truncated")
        if (not isinstance(users, list) or not all(isinstance(u, str) for u in users)
                or not isinstance(count, int) or isinstance(count, bool)
                or count < len(users) or not isinstance(truncated, bool)
                or reply.get("room") != request.room):
            return _unreadable(request, "not {ok, room, users, count, truncated}")
        return ok(room=request.room, namespace=request.namespace, users=users, count=count,
                  truncated=truncated)
    error = reply.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(message, str):
        message = "no message"
    if reply.get("ok") is False and code == "bad_request":
        return failed(bad_request(f"presence refused the query: {message}"))
    if reply.get("ok") is False and code == "unavailable":
        return failed(unavailable(f"presence is unavailable: {message}"))
    return _unreadable(request, f"error code {code!r}")


def _unreadable(request: RoomPresence, what: str) -> Answer:
    log.warning("presence answered a query for %s %r with %s", request.namespace,
                request.room, what)
    return failed(unavailable("presence gave an answer the router cannot read; see its log"))


async def no_gateway(gateway: str, body: bytes) -> bytes | None:
    """The emitter of a router that reaches no gateway: every emit is ``unavailable``."""
    return None


class Operations:
    def __init__(self, lookup: Lookup, publisher: Publisher, kicker: Kicker,
                 presence: PresenceAsker, emitter: SocketEmitter | None = None) -> None:
        self._lookup = lookup
        self._emitter = emitter or no_gateway
        self._publisher = publisher
        self._kicker = kicker
        self._presence = presence

    async def execute(self, request: Request) -> Answer:
        """Run one validated request; NATS trouble (or no presence replica) answers 503
        ``unavailable``."""
        try:
            if isinstance(request, Publish):
                result = await self._publish(request)
                return ok(seq=result.seq, duplicate=result.duplicate)
            if isinstance(request, Send):
                return await self._send(request)
            if isinstance(request, ListConnections):
                return ok(connections=listing(await self._lookup(request.user)))
            if isinstance(request, EmitToSocket):
                return await emit_to_socket(request, self._emitter)
            if isinstance(request, RoomPresence):
                reply = await self._presence(request.namespace, request.room)
                return presence_answer(request, reply)
            return await self._kick(request)
        except (LogUnavailable, RegistryUnavailable) as exc:
            return failed(unavailable(f"NATS could not take the request now: {exc}"))
        except PresenceUnavailable as exc:
            return failed(unavailable(f"presence is unavailable: {exc}"))

    async def _publish(self, request: Publish) -> PublishResult:
        return await self._publisher.publish(request.namespace, request.room, request.body,
                                             request.msg_id, request.logged)

    async def _send(self, request: Send) -> Answer:
        # Looked up first: a registry failure must not leave a publish behind a 503.
        live = await self._lookup(request.user)
        namespace = request.publish.namespace
        count = connections_in(live, namespace)
        if count == 0 and namespace == INBOX_NAMESPACE:
            await self._publisher.store_inbox(request.user, request.publish.body,
                                              request.publish.msg_id)
            return ok(connections=0, offline=True, stored=True, seq=None, duplicate=False)
        result = await self._publish(request.publish)
        return ok(connections=count, offline=count == 0, stored=False, seq=result.seq,
                  duplicate=result.duplicate)

    async def _kick(self, request: Kick) -> Answer:
        live = await self._lookup(request.user)
        gateways = sorted({info.gateway for info in live.values()})
        answers = await asyncio.gather(
            *(self._kicker(gateway, request.user, request.reason) for gateway in gateways))
        kicked = sum(n for n in answers if n is not None)
        unreached = sum(1 for n in answers if n is None)
        log.info("kicked user %r: %d connection(s) on %d gateway(s), %d unreached; reason: %r",
                 request.user, kicked, len(gateways), unreached, request.reason)
        return ok(kicked=kicked, unreached=unreached, reason=request.reason)
