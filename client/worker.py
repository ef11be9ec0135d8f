"""Write the application's logic behind Switchboard as easily as python-socketio handlers.

```python
from client.worker import HookError, Refuse, Worker

app = Worker("/orders")

@app.connect
async def connect(req):                       # req.user, req.claims, req.auth, req.headers
    if req.auth.get("api_key") != "k":
        raise Refuse("bad api key", data={"hint": "pass auth: {api_key}"})
    return app.accept(user=req.auth["name"], data={"tier": "gold"}, join=["room:lobby"])

@app.event("order:place")
async def place(ev, order):                   # ev.user, ev.data, ev.sid, ev.id, ev.ack
    if order.get("qty", 0) <= 0:
        raise HookError("bad_request", "qty must be positive")
    ev.publish("room:lobby", "order:placed", {"qty": order["qty"]})
    return {"ok": True}                       # the client's ack (a tuple for several args)

if __name__ == "__main__":
    app.run()                                 # SB_NATS_URL, SB_SUBJECT_PREFIX
```

Each request arrives on ``<prefix>.hook.<ns>.connect`` or ``<prefix>.hook.<ns>.event.<event>``
in the queue group ``hooks`` (:data:`QUEUE`), so any number of replicas, in any language,
share the load. Up to ``max_in_flight`` requests run at once per worker; on SIGTERM the
subscriptions are drained and the requests in flight finish before the process exits.
``bytes`` arguments arrive as ``bytes`` and ``bytes`` in answers are sent as
``{"$bin": base64}``. With ``dedup=`` a :class:`ReplyStore` answers retries (same ``id``)
without running the handler again (see :mod:`client.worker_dedup`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from prometheus_client import CollectorRegistry

from client.backend import Backend
from client.worker_context import Accept, Event, HookError, Refuse, accept
from client.worker_dedup import (
    Deduplicator,
    KvReplyStore,
    MemoryReplyStore,
    Reply,
    ReplyStore,
    StoreOpener,
    kv_replies,
)
from client.worker_dispatch import ConnectHandler, EventHandler, Handlers, encode
from client.worker_metrics import CONNECT_LABEL, WorkerMetrics
from client.worker_wire import (
    QUEUE,
    ConnectRequest,
    connect_subject,
    event_subject,
    event_wildcard,
)
from shared import httpservice, natsconn, service
from shared.config import ServiceSettings
from shared.metrics import NatsMetrics
from shared.protocol.names import decode_token

__all__ = [
    "QUEUE",
    "Accept",
    "ConnectRequest",
    "Event",
    "HookError",
    "KvReplyStore",
    "MemoryReplyStore",
    "Refuse",
    "ReplyStore",
    "Worker",
    "kv_replies",
]

log = logging.getLogger("switchboard.worker")

C = TypeVar("C", bound=ConnectHandler)
E = TypeVar("E", bound=EventHandler)
DEFAULT_MAX_IN_FLIGHT = 64


class Worker:
    """The handlers of one namespace and the NATS subscriptions that serve them.

    ``prefix``: the subject prefix (default ``SB_SUBJECT_PREFIX``, else ``sb``).
    ``dedup``: a :class:`ReplyStore` (``MemoryReplyStore()``), or a coroutine function
    opening one on the worker's connection (``kv_replies()``: a KV bucket shared by every
    replica), to answer retries of an ``id`` with the first answer.
    ``max_in_flight``: requests handled at once; more wait in NATS's pending queue.
    ``all_events``: subscribe to every event of the namespace and answer ``unknown_event``
    for those without a handler; ``False`` subscribes only the registered events, so several
    applications can split one namespace's events (an event nobody serves then gets
    ``unavailable`` from the gateway). Every worker of a namespace must then use ``False``.
    """

    accept = staticmethod(accept)

    def __init__(self, namespace: str, *, prefix: str | None = None,
                 dedup: ReplyStore | StoreOpener | None = None,
                 max_in_flight: int = DEFAULT_MAX_IN_FLIGHT, all_events: bool = True,
                 registry: CollectorRegistry | None = None) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.handlers = Handlers(namespace)
        self._dedup = dedup
        self.namespace = self.handlers.nsp
        self._prefix_given = prefix is not None
        self.prefix = prefix if prefix is not None else os.environ.get(
            "SB_SUBJECT_PREFIX", "sb")
        self.all_events = all_events
        self.metrics = WorkerMetrics(registry or CollectorRegistry())
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._subs: list[Subscription] = []
        self._nc: Client | None = None
        self._backend: Backend | None = None

    # --- registration -----------------------------------------------------------------------

    def connect(self, handler: C) -> C:
        """Decorator: the connect hook, ``(req) -> Accept | None``; raise :class:`Refuse`."""
        self.handlers.add_connect(handler)
        return handler

    def event(self, name: str) -> Callable[[E], E]:
        """Decorator: the handler of event ``name``, ``(ev, *args) -> ack``; raise
        :class:`HookError` for a typed error ack."""
        def register(handler: E) -> E:
            self.handlers.add_event(name, handler)
            return handler
        return register

    # --- running ----------------------------------------------------------------------------

    @property
    def nc(self) -> Client:
        """The NATS connection (after :meth:`start`), for the application's own use."""
        if self._nc is None:
            raise RuntimeError("the worker has not been started")
        return self._nc

    @property
    def backend(self) -> Backend:
        """The server API over this worker's connection: publish to rooms, send to users,
        emit to one socket, kick (see :class:`client.backend.Backend`)."""
        if self._backend is None:
            self._backend = Backend(self.nc, self.prefix)
        return self._backend

    @property
    def serving(self) -> bool:
        """Subscribed and connected: what ``/readyz`` reports."""
        return bool(self._subs) and self._nc is not None and self._nc.is_connected

    def subjects(self) -> list[str]:
        """What :meth:`start` subscribes, in the queue group :data:`QUEUE`."""
        found = []
        if self.handlers.connect is not None:
            found.append(connect_subject(self.prefix, self.namespace))
        if self.all_events:
            found.append(event_wildcard(self.prefix, self.namespace))
        else:
            found += [event_subject(self.prefix, self.namespace, e)
                      for e in self.handlers.events]
        return found

    async def start(self, nc: Client) -> None:
        """Subscribe on ``nc``; requests are served from now until :meth:`stop`."""
        self._nc = nc
        if self._dedup is not None and self.handlers.dedup is None:
            store = self._dedup(nc) if callable(self._dedup) else self._dedup
            store = await store if inspect.isawaitable(store) else store
            self.handlers.dedup = Deduplicator(store)
        for subject in self.subjects():
            handle = (self._answer_connect if subject.endswith(".connect")
                      else self._answer_event)
            self._subs.append(await nc.subscribe(subject, queue=QUEUE,
                                                 cb=self._receiver(handle)))
        await nc.flush()
        log.info("worker %s serving %s (queue %s)", self.namespace,
                 ", ".join(self.subjects()), QUEUE)

    async def stop(self) -> None:
        """Stop taking requests (the subscriptions drain) and let those in flight finish."""
        subs, self._subs = self._subs, []
        for sub in subs:
            with contextlib.suppress(NatsError):
                await sub.drain()  # type: ignore[no-untyped-call]
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def serve(self, settings: ServiceSettings, stop: asyncio.Event) -> None:
        """Connect to ``settings.nats_url``, serve until ``stop`` is set, then stop cleanly.
        ``/healthz``, ``/readyz`` and ``/metrics`` are served when ``SB_PORT`` is set."""
        if not self._prefix_given:
            self.prefix = settings.subject_prefix
        nc = await natsconn.connect(settings.nats_url, f"worker-{settings.instance_id}",
                                    NatsMetrics(self.metrics.registry, "worker"))
        health = None
        try:
            if "SB_PORT" in os.environ:
                app = httpservice.health_app(self.metrics.registry, lambda: self.serving)
                health = await httpservice.start(app, settings.host, settings.port)
            await self.start(nc)
            await stop.wait()
            log.info("worker %s stopping: draining", self.namespace)
            await self.stop()
        finally:
            if health is not None:
                await health.cleanup()
            await nc.close()

    def run(self) -> None:
        """``python -m yourmodule``: settings from ``SB_*`` variables, SIGTERM/SIGINT stop."""
        service.main(f"worker{self.namespace}", ServiceSettings, self.serve)

    # --- requests ---------------------------------------------------------------------------

    def _receiver(self, handle: Callable[[Msg], Coroutine[Any, Any, None]]
                  ) -> Callable[[Msg], Awaitable[None]]:
        async def receive(msg: Msg) -> None:
            await self._slots.acquire()
            task = asyncio.create_task(handle(msg))
            self._tasks.add(task)
            self.metrics.in_flight.inc()
            task.add_done_callback(self._finished)
        return receive

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        self.metrics.in_flight.dec()

    async def _answer_connect(self, msg: Msg) -> None:
        started = time.perf_counter()
        reply = await self.handlers.answer_connect(msg.data)
        await self._respond(msg, CONNECT_LABEL, reply, started)

    async def _answer_event(self, msg: Msg) -> None:
        started = time.perf_counter()
        reply = await self.handlers.answer_event(msg.data)
        await self._respond(msg, self._event_label(msg.subject), reply, started)

    def _event_label(self, subject: str) -> str:
        try:
            event = decode_token(subject.rsplit(".", 1)[-1])
        except ValueError:
            return "other"
        return event if event in self.handlers.events else "other"

    async def _respond(self, msg: Msg, label: str, reply: Reply, started: float) -> None:
        self.metrics.answered(self.namespace, label, reply, time.perf_counter() - started)
        if not msg.reply:
            return
        try:
            await msg.respond(encode(reply))
        except NatsError as exc:
            log.warning("worker %s: reply not sent (%s)", self.namespace, exc)

