"""The server API over HTTP (``/api/v1/...``): a short shell around :class:`router.api.Api`.

It checks the bearer key, reads the path's user and the JSON body (``presence``: the path's
room and the ``namespace`` query parameter, as the body the NATS door gets), and writes the
answer; every other rule is the front door's. Framework-level refusals under ``/api/``
(unknown path, wrong method, body over the size limit) are answered in the same JSON error
shape.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from router.answers import Answer, Failure, failed, from_status, too_large, unauthorized
from router.api import Api
from router.requests import decode_json

PREFIX = "/api/v1"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def authorized(header: str | None, api_key: str) -> bool:
    """Whether ``Authorization`` carries ``Bearer <api_key>`` (constant-time comparison)."""
    if not header or not api_key:
        return False
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), api_key.encode())


def respond(answer: Answer) -> web.Response:
    headers = {}
    if answer.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="switchboard"'
    retry_ms = answer.body.get("error", {}).get("retry_after_ms")
    if answer.status == 429 and retry_ms is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_ms / 1000)))
    return web.Response(status=answer.status, body=orjson.dumps(answer.body),
                        content_type="application/json", headers=headers)


def presence_body(request: web.Request) -> dict[str, object]:
    """``GET /rooms/{room}/presence?namespace=``: the same ``{"room", "namespace"?}`` a NATS
    request carries (without the parameter, the namespace defaults as it does there)."""
    body: dict[str, object] = {"room": request.match_info.get("room")}
    if "namespace" in request.query:
        body["namespace"] = request.query["namespace"]
    return body


async def _input(operation: str, request: web.Request) -> object | Failure:
    if operation == "connections":
        return {}
    if operation == "presence":
        return presence_body(request)
    body = await _body(request)
    if operation == "emit" and isinstance(body, dict):  # the path's sid wins over the body's
        body = {**body, "sid": request.match_info.get("sid")}
    return body


async def _body(request: web.Request) -> object | Failure:
    """The decoded JSON body; ``None`` for an empty one."""
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return too_large("the request body is over the router's size limit")
    return decode_json(raw) if raw.strip() else None


def _handler(api: Api, operation: str, api_key: str, clock: Callable[[], float]) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        if not authorized(request.headers.get("Authorization"), api_key):
            answer = failed(unauthorized())
            api.count(operation, "http", answer)
            return respond(answer)
        body = await _input(operation, request)
        user = request.match_info.get("user")
        return respond(await api.handle(operation, body, user, clock(), "http"))

    return handle


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own 404/405/413 under ``/api/`` in the API's JSON error shape."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.status < 400:
            raise
        return respond(failed(from_status(exc.status, exc.reason)))


def add_routes(app: web.Application, api: Api, api_key: str,
               clock: Callable[[], float]) -> None:
    """Add the API's routes to ``app`` (the service's health app, before it starts)."""
    app.middlewares.append(json_errors)
    app.router.add_post(f"{PREFIX}/publish", _handler(api, "publish", api_key, clock))
    app.router.add_post(f"{PREFIX}/users/{{user}}/send", _handler(api, "send", api_key, clock))
    app.router.add_get(f"{PREFIX}/users/{{user}}/connections",
                       _handler(api, "connections", api_key, clock))
    app.router.add_delete(f"{PREFIX}/users/{{user}}/connections",
                          _handler(api, "kick", api_key, clock))
    app.router.add_post(f"{PREFIX}/sockets/{{sid}}/emit", _handler(api, "emit", api_key, clock))
    app.router.add_get(f"{PREFIX}/rooms/{{room}}/presence",
                       _handler(api, "presence", api_key, clock))
