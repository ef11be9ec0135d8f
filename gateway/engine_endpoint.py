"""The Engine.IO endpoint: every request to ``/socket.io/``, by transport and session.

The decision is :func:`gateway.handshake.decide`'s; this shell carries it out. A new
WebSocket session is upgraded at once; a new polling session answers its handshake GET with
the open packet; a request naming a ``sid`` goes to that session: a poll or a POST to its
:class:`~gateway.polling.PollingChannel`, a WebSocket to the upgrade of it. Polling answers
carry CORS headers from the Origin allow-list, and their errors the reference server's JSON
bodies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from gateway.channel import Channel
from gateway.connection import Connection
from gateway.cors import Headers, cors_headers, preflight_headers
from gateway.handshake import Accept, HandshakePolicy, Reject, Resume, decide
from gateway.http import Headers as RequestHeaders
from gateway.http import Request, Response, Result, Upgrade, text_response
from gateway.polling import PollingChannel, Prober, error_response
from gateway.polling_codec import (
    BAD_HANDSHAKE_METHOD,
    BAD_REQUEST,
    FORBIDDEN,
    UNKNOWN_SID,
    UNKNOWN_TRANSPORT,
    PollingError,
)
from gateway.polling_forward import PollingForwarder
from gateway.takeover import Takeovers
from gateway.takeover_state import SessionState
from gateway.websocket import check_upgrade, switching_protocols
from gateway.websocket_protocol import MessageHandler, WebSocketProtocol
from shared.jwtauth import Identity
from shared.metrics import GatewayMetrics

log = logging.getLogger(__name__)

Opener = Callable[[Channel, Identity | None, str, tuple[str, ...], RequestHeaders], Connection]
"""Start a connection over a channel: (channel, identity, sid, upgrades, the handshake's
headers) → its handler."""
Adopter = Callable[[PollingChannel, SessionState], Awaitable[bool]]
"""Carry a taken-over session on over a channel of this gateway: ``False`` if it could not."""


class EngineEndpoint:
    def __init__(self, policy: HandshakePolicy, max_payload: int, metrics: GatewayMetrics,
                 open_connection: Opener, new_sid: Callable[[], str],
                 draining: Callable[[], bool], gateway_id: str = "",
                 owner_of: Callable[[str], str | None] = lambda _: None) -> None:
        self._policy = policy
        self._max_payload = max_payload
        self._metrics = metrics
        self._open = open_connection
        self._new_sid = new_sid
        self._draining = draining
        self.polling: dict[str, PollingChannel] = {}
        self.forwarder: PollingForwarder | None = None
        self.takeovers: Takeovers | None = None
        self.adopt: Adopter | None = None
        self.arriving: dict[str, asyncio.Future[None]] = {}
        """Sessions being taken over right now: their forwarded requests wait for them."""
        self._gateway_id = gateway_id
        self._owner_of = owner_of

    def __call__(self, request: Request) -> Result:
        origin = _origin(request)
        cors = cors_headers(origin, self._policy.allowed_origins)
        if request.method == "OPTIONS":
            return Response(204, headers=(
                ("Allow", "GET, POST, OPTIONS"),
                *preflight_headers(origin, self._policy.allowed_origins,
                                   _first(request, "access-control-request-headers"))))
        verdict = decide(request.target, request.headers, self._policy, request.peer,
                         draining=self._draining())
        if isinstance(verdict, Reject):
            return self._refused(request, verdict, cors)
        if verdict.transport == "polling" and request.headers.get_all("upgrade"):
            return error_response(BAD_REQUEST, cors)  # an upgrade must name the websocket
        if isinstance(verdict, Resume):
            return self._resume(request, verdict, cors)
        if verdict.transport == "polling":
            return self._polling_handshake(request, verdict, cors)
        return self._websocket(request, verdict.identity)

    # --- new sessions -------------------------------------------------------------------------

    def _websocket(self, request: Request, identity: Identity | None) -> Response | Upgrade:
        accept = check_upgrade(request)
        if isinstance(accept, Response):
            return accept
        self._metrics.handshakes.labels("accepted").inc()
        self._metrics.sessions_opened.labels("websocket").inc()

        def opened(ws: WebSocketProtocol) -> MessageHandler:
            return self._open(ws, identity, self._new_sid(), (), request.headers)

        return Upgrade(switching_protocols(accept),
                       lambda: WebSocketProtocol(self._max_payload, opened))

    def _polling_handshake(self, request: Request, verdict: Accept, cors: Headers) -> Result:
        if request.method != "GET":
            return error_response(BAD_HANDSHAKE_METHOD, cors)
        self._metrics.handshakes.labels("accepted").inc()
        self._metrics.sessions_opened.labels("polling").inc()
        sid = self._new_sid()
        channel = self.polling[sid] = PollingChannel(sid, self._gone)
        upgrades = ("websocket",) if "websocket" in self._policy.transports else ()
        channel.handler = self._open(channel, verdict.identity, sid, upgrades, request.headers)
        return channel.get(cors)

    # --- requests of a session ------------------------------------------------------------------

    def _resume(self, request: Request, verdict: Resume, cors: Headers) -> Result:
        channel = self.polling.get(verdict.sid)
        if verdict.transport == "websocket":
            return self._upgrade(request, channel, verdict.sid)
        if channel is None:
            return self._elsewhere(request, verdict.sid, cors)
        if request.method not in ("GET", "POST"):
            return error_response(BAD_REQUEST, cors)
        if channel.moved_to is not None and self.forwarder is not None:
            return self.forwarder.forward(channel.moved_to, verdict.sid, request.method,
                                          request.body, cors)
        if request.method == "GET":
            return channel.get(cors)
        return channel.post(request.body, cors)

    def _elsewhere(self, request: Request, sid: str, cors: Headers) -> Result:
        """A session this gateway does not hold: its owner's, if it lives (no stickiness)."""
        owner = self._owner_of(sid)
        if (self.forwarder is None or owner is None or owner == self._gateway_id
                or request.method not in ("GET", "POST")):
            return error_response(UNKNOWN_SID, cors)
        return self.forwarder.forward(owner, sid, request.method, request.body, cors)

    def _upgrade(self, request: Request, channel: PollingChannel | None, sid: str) -> Result:
        """The WebSocket of a polling session's upgrade: once, and only while it polls; for
        a session another gateway holds, once that gateway handed it over."""
        owner = self._owner_of(sid)
        if channel is None:
            if self.takeovers is None or owner is None or owner == self._gateway_id:
                return error_response(UNKNOWN_SID)
        elif (channel.closed or channel.upgraded or channel.upgrading
              or channel.moved_to is not None):
            return error_response(BAD_REQUEST)
        accept = check_upgrade(request)
        if isinstance(accept, Response):
            return accept
        if channel is None and owner is not None:
            return self._take_over(owner, sid, accept)
        assert channel is not None
        return self._prober(channel, accept)

    def _prober(self, channel: PollingChannel, accept: str) -> Upgrade:
        return Upgrade(switching_protocols(accept), lambda: WebSocketProtocol(
            self._max_payload, lambda ws: Prober(channel, ws, self._metrics.upgrades.inc)))

    async def _take_over(self, owner: str, sid: str, accept: str) -> Response | Upgrade:
        if sid in self.arriving:  # a second WebSocket for the same session
            return error_response(BAD_REQUEST)
        arrived = self.arriving[sid] = asyncio.get_running_loop().create_future()
        try:
            channel = await self._adopted(owner, sid)
        finally:
            del self.arriving[sid]
            arrived.set_result(None)
        return error_response(BAD_REQUEST) if channel is None else self._prober(channel, accept)

    async def _adopted(self, owner: str, sid: str) -> PollingChannel | None:
        assert self.takeovers is not None and self.adopt is not None
        state = await self.takeovers.take(owner, sid)
        if state is None:
            return None
        channel = self.polling[sid] = PollingChannel(sid, self._gone)
        channel.freeze()
        channel.preload(state.packets)
        if not await self.adopt(channel, state):
            return None
        channel.held[:0] = state.posted
        channel.thaw()
        return channel

    def finished(self, sid: str) -> None:
        """A connection ended: an upgraded session's channel goes with it (one still polling
        lingers on its own, to answer a late GET with the close packet)."""
        channel = self.polling.get(sid)
        if channel is not None and channel.upgraded:
            del self.polling[sid]

    def _gone(self, channel: PollingChannel) -> None:
        if self.polling.get(channel.sid) is channel:
            del self.polling[channel.sid]

    def _refused(self, request: Request, verdict: Reject, cors: Headers) -> Response:
        self._metrics.handshakes.labels(str(verdict.status)).inc()
        if verdict.status == 401:
            self._metrics.auth_failures.labels("upgrade").inc()
        if "transport=websocket" in request.target:
            return text_response(verdict.status, verdict.reason + "\n")
        error = _POLLING_ERRORS.get(verdict.status, BAD_REQUEST)
        if verdict.reason == UNKNOWN_TRANSPORT.message:
            error = UNKNOWN_TRANSPORT
        return error_response(PollingError(verdict.status, error.code, verdict.reason), cors)


_POLLING_ERRORS = {403: FORBIDDEN, 401: FORBIDDEN}


def _first(request: Request, name: str) -> str | None:
    values = request.headers.get_all(name)
    return values[0] if values else None


def _origin(request: Request) -> str | None:
    return _first(request, "origin")
