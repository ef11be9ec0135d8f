"""The worker's core: one namespace's handlers, and the reply to every request body.

No NATS here: a request's bytes go in, the reply object comes out, whatever the handler did.
A handler that raises something other than :class:`Refuse`/:class:`HookError` is a bug in the
application: it is logged and answered ``internal``, and the worker goes on serving.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from client.worker_context import Accept, Event, HookError, Refuse
from client.worker_dedup import Deduplicator, Reply, dedup_key
from client.worker_wire import (
    ConnectRequest,
    EventRequest,
    WireError,
    check_namespace,
    dumps,
    error_reply,
    parse_connect,
    parse_event,
    refusal,
)
from shared.protocol.errors import ErrorCode
from shared.protocol.events import CLIENT_EVENTS, RESERVED

log = logging.getLogger("switchboard.worker")

ConnectHandler = Callable[[ConnectRequest], Any]
"""``(req) -> Accept | None`` (or a coroutine of it); raise :class:`Refuse` to refuse."""
EventHandler = Callable[..., Any]
"""``(ev, *args) -> ack`` (or a coroutine of it); raise :class:`HookError` to fail."""

_INTERNAL = error_reply(ErrorCode.INTERNAL, "the application's handler failed")


class Handlers:
    """The connect handler and event handlers of one namespace."""

    def __init__(self, nsp: str, dedup: Deduplicator | None = None) -> None:
        self.nsp = check_namespace(nsp)
        self.dedup = dedup
        self.connect: ConnectHandler | None = None
        self.events: dict[str, EventHandler] = {}
        self._signatures: dict[str, inspect.Signature] = {}

    def add_connect(self, handler: ConnectHandler) -> None:
        self.connect = handler

    def add_event(self, event: str, handler: EventHandler) -> None:
        """Register ``handler`` for ``event``; built-in and reserved names are refused (the
        gateway answers those itself, so the handler would never run)."""
        if not isinstance(event, str) or not event:
            raise ValueError("an event name is a non-empty string")
        if event in CLIENT_EVENTS or event in RESERVED:
            raise ValueError(f"{event!r} is built in or reserved; the gateway answers it")
        self.events[event] = handler
        self._signatures[event] = inspect.signature(handler)

    async def answer_connect(self, raw: bytes) -> Reply:
        try:
            request = parse_connect(raw)
        except WireError as exc:
            return refusal(str(exc), {"code": ErrorCode.BAD_REQUEST.value})
        if self.connect is None:
            return Accept().reply()
        try:
            result = await _call(self.connect, request)
            if result is None:
                result = Accept()
            if not isinstance(result, Accept):
                raise TypeError(f"a connect handler returns Accept or None, not {result!r}")
            return result.reply()
        except Refuse as refused:
            return refused.reply()
        except HookError as failed:
            return refusal(failed.message, failed.data)
        except Exception:
            log.exception("connect handler of %s failed (sid %s)", self.nsp, request.sid)
            return refusal("internal error", {"code": ErrorCode.INTERNAL.value})

    async def answer_event(self, raw: bytes) -> Reply:
        try:
            request = parse_event(raw)
        except WireError as exc:
            return error_reply(ErrorCode.BAD_REQUEST, str(exc))
        handler = self.events.get(request.event)
        if handler is None:
            return error_reply(ErrorCode.UNKNOWN_EVENT, f"no handler for {request.event!r}")
        if self.dedup is None or not request.id:
            return await self._run(handler, request)
        key = dedup_key(self.nsp, request.event, request.id)
        return await self.dedup.once(key, lambda: self._run(handler, request))

    async def _run(self, handler: EventHandler, request: EventRequest) -> Reply:
        ev = Event.of(request)
        try:
            self._signatures[request.event].bind(ev, *request.args)
        except TypeError:
            return error_reply(ErrorCode.BAD_REQUEST,
                               f"{request.event}: wrong number of arguments "
                               f"({len(request.args)})")
        try:
            return ev.reply(await _call(handler, ev, *request.args))
        except HookError as failed:
            return failed.reply()
        except Exception:
            log.exception("handler of %s %s failed (sid %s, id %s)", self.nsp, request.event,
                          request.sid, request.id)
            return dict(_INTERNAL)


async def _call(handler: Callable[..., Any], *args: Any) -> Any:
    """Plain functions and coroutine functions alike, as python-socketio allows both."""
    result = handler(*args)
    if inspect.isawaitable(result):
        return await result
    return result


def encode(reply: Reply) -> bytes:
    """The reply's bytes; a reply JSON cannot carry (a handler returned a set, say) is logged
    and answered ``internal``."""
    try:
        return dumps(reply)
    except TypeError:
        log.exception("a handler's answer cannot be sent as JSON")
        return dumps(_INTERNAL)
