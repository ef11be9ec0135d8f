"""A backend's side of the server API, over NATS request/reply.

```python
nc = await nats.connect("nats://127.0.0.1:4222")
backend = Backend(nc)
await backend.publish("/chat", "room:lobby", "announcement", {"text": "hi"})  # {ok, seq, ...}
await backend.send("alice", "/notifications", "note", {"n": 1})  # {ok, connections, offline}
await backend.connections("alice")                               # {ok, connections: [...]}
await backend.kick("alice", reason="banned")                     # {ok, kicked, reason}
await backend.emit_to_socket(sid, "order:filled", {"id": 7})     # {ok, delivered: 1}
```

Requests go to ``<prefix>.api.<operation>``, which every router replica serves in one queue
group. A request that times out (the replica that had it died) or finds no responder is
sent once more, to whichever replica NATS picks. Publishes and sends carry an idempotency
``id`` (generated unless given), so in the durable namespaces a retry whose first attempt
did get through is stored and delivered once and answered ``duplicate: true``; in
``/live-updates`` and ``/`` such a retry may deliver twice. A retried kick answers what the
second attempt closed.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from nats.aio.client import Client
from nats.errors import NoRespondersError

from client.errors import SwitchboardError
from client.worker_wire import dumps
from shared.subjects import Subjects

DEFAULT_TIMEOUT_S = 5.0


class BackendError(SwitchboardError):
    """The router answered ``{ok: false, error: {code, message}}``; ``code`` is stable
    (``bad_request``, ``not_found``, ``too_large``, ``rate_limited``, ``unavailable``,
    ``internal``)."""

    def __init__(self, operation: str, code: str, message: str, status: int | None = None,
                 retry_after_ms: int | None = None) -> None:
        super().__init__(f"{operation}: {code}: {message}")
        self.operation = operation
        self.code = code
        self.message = message
        self.status = status
        self.retry_after_ms = retry_after_ms


class BackendUnavailable(BackendError):
    """No router answered, even after the retry (code ``unavailable``)."""

    def __init__(self, operation: str, message: str) -> None:
        super().__init__(operation, "unavailable", message)


class Backend:
    def __init__(self, nc: Client, prefix: str = "sb",
                 timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._nc = nc
        self._subjects = Subjects(prefix)
        self.timeout = timeout
        self.retries = 0  # requests sent a second time (observability, tests)

    async def publish(self, namespace: str, room: str, event: str, data: dict[str, Any],
                      message_id: str | None = None) -> dict[str, Any]:
        """Publish ``event`` with ``data`` to a room: ``{ok, seq, duplicate}`` (``seq`` is
        ``None`` in ephemeral namespaces)."""
        return await self._call("publish", {
            "namespace": namespace, "room": room, "event": event, "data": data,
            "id": message_id or uuid.uuid4().hex})

    async def send(self, user: str, namespace: str, event: str, data: dict[str, Any],
                   message_id: str | None = None) -> dict[str, Any]:
        """Send to every connection of ``user`` in ``namespace``, wherever they are:
        ``{ok, connections, offline, seq, duplicate}``."""
        return await self._call("send", {
            "user": user, "namespace": namespace, "event": event, "data": data,
            "id": message_id or uuid.uuid4().hex})

    async def connections(self, user: str) -> dict[str, Any]:
        """``{ok, connections: [{id, gateway, namespaces, connected_at}]}``."""
        return await self._call("connections", {"user": user})

    async def kick(self, user: str, reason: str | None = None) -> dict[str, Any]:
        """Disconnect every connection of ``user``: ``{ok, kicked, unreached, reason}``."""
        return await self._call("kick", {"user": user, "reason": reason})

    async def emit_to_socket(self, sid: str, event: str, *args: Any) -> dict[str, Any]:
        """Send ``event`` with ``args`` to the one socket ``sid`` (the socket's own id, as a
        hook request names it): ``{ok, delivered: 1}``; :class:`BackendError` ``not_found``
        when no such socket is connected, ``unavailable`` when its gateway did not answer.
        ``bytes`` arguments reach the client as Socket.IO binary. Not logged and not
        retried by the gateway: a retry after a timeout may deliver twice."""
        return await self._call("emit", {"sid": sid, "event": event, "args": list(args)})

    async def room_presence(self, room: str, namespace: str = "/chat") -> dict[str, Any]:
        """Who is in a room: ``{ok, room, namespace, users, count, truncated}`` (users whose
        last socket left within the presence grace are still listed)."""
        return await self._call("presence", {"room": room, "namespace": namespace})

    async def _call(self, operation: str, payload: dict[str, Any]) -> dict[str, Any]:
        subject = self._subjects.api(operation)
        data = dumps(payload)  # bytes as {"$bin": base64}
        try:
            reply = await self._nc.request(subject, data, timeout=self.timeout)
        except (TimeoutError, NoRespondersError):
            self.retries += 1
            try:
                reply = await self._nc.request(subject, data, timeout=self.timeout)
            except (TimeoutError, NoRespondersError) as exc:
                raise BackendUnavailable(operation, f"no router answered: {exc}") from exc
        return decode_answer(operation, reply.data)


def decode_answer(operation: str, raw: bytes) -> dict[str, Any]:
    """The router's answer, or :class:`BackendError` for ``{ok: false}`` and garbage."""
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise BackendError(operation, "internal", "the router's answer is not JSON") from None
    if not isinstance(answer, dict):
        raise BackendError(operation, "internal", "the router's answer is not an object")
    if answer.get("ok") is True:
        return answer
    error = answer.get("error")
    error = error if isinstance(error, dict) else {}
    retry = error.get("retry_after_ms")
    raise BackendError(operation, str(error.get("code", "internal")),
                       str(error.get("message", "no message")), answer.get("status"),
                       retry if isinstance(retry, int) else None)
