"""The server API over NATS request/reply: ``<prefix>.api.<operation>`` in queue group
``router``, so each request reaches one router replica.

The request is the HTTP body plus ``"user"`` where the HTTP path has it (``presence``:
``{"room", "namespace"?}``, the HTTP path's room and query); the reply is the HTTP answer plus
``"status"``. No API key: who may publish on ``<prefix>.api.>`` is NATS's own authorisation.
Requests run as tasks, at most ``max_in_flight`` at once, so one slow kick (or presence query)
does not hold up the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from router.api import Api
from router.requests import OPERATIONS, decode_json
from shared.subjects import Subjects

log = logging.getLogger(__name__)

QUEUE_GROUP = "router"


def user_of(body: object) -> object:
    return body.get("user") if isinstance(body, dict) else None


class NatsApi:
    def __init__(self, nc: Client, subjects: Subjects, api: Api, clock: Callable[[], float],
                 max_in_flight: int = 256) -> None:
        self._nc = nc
        self._subjects = subjects
        self._api = api
        self._clock = clock
        self._slots = asyncio.Semaphore(max_in_flight)
        self._subs: list[Subscription] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def serving(self) -> bool:
        return len(self._subs) == len(OPERATIONS)

    async def start(self) -> None:
        for operation in OPERATIONS:
            sub = await self._nc.subscribe(self._subjects.api(operation), queue=QUEUE_GROUP,
                                           cb=self._receiver(operation))
            self._subs.append(sub)
        await self._nc.flush(timeout=2)

    def _receiver(self, operation: str) -> Callable[[Msg], Awaitable[None]]:
        async def receive(msg: Msg) -> None:
            if not msg.reply:
                return  # a publish, not a request: nobody to answer
            await self._slots.acquire()
            task = asyncio.get_running_loop().create_task(self._serve(operation, msg))
            self._tasks.add(task)
            task.add_done_callback(self._done)

        return receive

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _serve(self, operation: str, msg: Msg) -> None:
        body = decode_json(msg.data) if msg.data.strip() else None
        answer = await self._api.handle(operation, body, user_of(body), self._clock(), "nats")
        try:
            await self._nc.publish(msg.reply, orjson.dumps(answer.with_status()))
        except NatsError as exc:  # the requester retries on its timeout
            log.warning("could not reply to a server API request: %s", exc)

    async def stop(self) -> None:
        """Stop taking requests and finish the ones in flight."""
        for sub in self._subs:
            with contextlib.suppress(NatsError):
                await sub.unsubscribe()
        self._subs.clear()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
