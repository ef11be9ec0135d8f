"""Polling without sticky sessions: a request for a session another gateway owns is carried
to that gateway over NATS request/reply, and its answer relayed.

The sid names its owner (:mod:`gateway.sids`), so any gateway behind a round-robin balancer
can take any request. The forwarded request is the body, raw, with its method and sid in
headers; the answer comes back the same way, its status in a header. A parked GET is one
outstanding NATS request, so its timeout outlasts a ping interval (the owner answers a GET
at least once per ping). An answer is capped below NATS's ``max_payload``: the owner leaves
what does not fit for the next poll. If the client's connection of a forwarded GET goes
away, the owner is told, as if the GET had been cancelled there. An owner that does not
answer at all (no responders: it is gone) means the session is gone: ``Session ID unknown``,
and the client reconnects and recovers elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError

from gateway.cors import Headers
from gateway.http import Response
from gateway.polling import PollingChannel, error_response
from gateway.polling_codec import UNKNOWN_SID
from shared.metrics import GatewayMetrics
from shared.subjects import Subjects

log = logging.getLogger(__name__)

METHOD, SID, STATUS, TYPE, CANCEL = "Sb-Method", "Sb-Sid", "Sb-Status", "Sb-Type", "Sb-Cancel"
POST_TIMEOUT_S = 5.0
ANSWER_ROOM = 4096  # bytes of a NATS message that are not the answer's body


def get_timeout_s(ping_interval_ms: int, ping_timeout_ms: int) -> float:
    """A parked GET is answered at the latest by the next ping: wait past that."""
    return (ping_interval_ms + ping_timeout_ms) / 1000 + 5.0


class PollingForwarder:
    """Both sides: :meth:`forward` for requests that land here, :meth:`serve` for the
    requests of sessions owned here that landed elsewhere."""

    def __init__(self, nc: Client, subjects: Subjects, gateway_id: str,
                 sessions: Callable[[str], PollingChannel | None], get_timeout_s: float,
                 metrics: GatewayMetrics) -> None:
        self._nc = nc
        self._metrics = metrics
        self._subjects = subjects
        self._gateway_id = gateway_id
        self._sessions = sessions
        self._get_timeout_s = get_timeout_s
        self.answer_limit = max(1024, nc.max_payload - ANSWER_ROOM)
        self._parked: set[asyncio.Future[None]] = set()
        self.arriving: Callable[[str], asyncio.Future[None] | None] = lambda _: None
        """A session being taken over here right now: its requests wait for it."""

    async def start(self) -> None:
        await self._nc.subscribe(self._subjects.polling_forward(self._gateway_id),
                                 cb=self._serve)

    # --- the gateway the request landed on ----------------------------------------------------

    async def forward(self, owner: str, sid: str, method: str, body: bytes,
                      cors: Headers) -> Response:
        subject = self._subjects.polling_forward(owner)
        timeout = self._get_timeout_s if method == "GET" else POST_TIMEOUT_S
        outcomes = self._metrics.forwarded
        started = time.perf_counter()
        try:
            reply = await self._nc.request(subject, body, timeout=timeout,
                                           headers={METHOD: method, SID: sid})
        except NoRespondersError:
            outcomes.labels(method, "gone").inc()
            return error_response(UNKNOWN_SID, cors)
        except asyncio.CancelledError:
            if method == "GET":  # the client went away while its poll was parked there
                with contextlib.suppress(NatsError):
                    await self._nc.publish(subject, b"", headers={CANCEL: "1", SID: sid})
            raise
        except (TimeoutError, NatsError):
            outcomes.labels(method, "failed").inc()
            log.warning("polling request forwarded to %s got no answer", owner)
            return error_response(UNKNOWN_SID, cors)
        outcomes.labels(method, "ok").inc()
        if method == "POST":
            self._metrics.forward_seconds.observe(time.perf_counter() - started)
        headers = reply.headers or {}
        content_type = headers.get(TYPE, "text/plain; charset=UTF-8")
        return Response(int(headers.get(STATUS, "200")), reply.data,
                        (("Content-Type", content_type), ("Cache-Control", "no-store"), *cors))

    # --- the owner ------------------------------------------------------------------------------

    async def _serve(self, msg: Msg) -> None:
        """nats-py runs one subscription's callbacks one after the other: a parked GET is
        answered from a task of its own, so the POSTs behind it are not held up."""
        headers = msg.headers or {}
        sid = headers.get(SID, "")
        channel = self._sessions(sid)
        arriving = self.arriving(sid) if channel is None else None
        if arriving is not None:
            self._park(self._serve_after(arriving, msg))
            return
        if headers.get(CANCEL):
            if channel is not None:
                channel.forwarded_get_cancelled()
            return
        answer: Response | Awaitable[Response]
        method = headers.get(METHOD)
        if channel is None:
            answer = error_response(UNKNOWN_SID)
        elif channel.moved_to is not None:  # taken over: on to the new owner
            answer = self.forward(channel.moved_to, sid, method or "GET", msg.data, ())
        elif method == "POST":
            answer = channel.post(msg.data, ())
        else:
            answer = channel.get((), limit=self.answer_limit, forwarded=True)
        if isinstance(answer, Response):
            await self._reply(msg, answer)
            return
        self._park(self._reply_when(msg, answer))

    def _park(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._parked.add(task)
        task.add_done_callback(self._parked.discard)

    async def _serve_after(self, arriving: asyncio.Future[None], msg: Msg) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(arriving)
        if self._sessions((msg.headers or {}).get(SID, "")) is not None:
            await self._serve(msg)
        elif not (msg.headers or {}).get(CANCEL):
            await self._reply(msg, error_response(UNKNOWN_SID))

    async def _reply_when(self, msg: Msg, answer: Awaitable[Response]) -> None:
        await self._reply(msg, await answer)

    async def _reply(self, msg: Msg, response: Response) -> None:
        if msg.reply:
            with contextlib.suppress(NatsError):
                await self._nc.publish(msg.reply, response.body, headers=reply_headers(response))


def reply_headers(response: Response) -> dict[str, str]:
    return {STATUS: str(response.status),
            TYPE: dict(response.headers).get("Content-Type", "text/plain; charset=UTF-8")}
