"""Sending the session core's hook requests to the application over NATS.

One reply inbox per hook timeout in use (namespaces rarely differ, and each inbox's sweeper
then fails requests in the order they were sent): a request is one PUB and a callback, no
task. The answer is the reply's body, or a :class:`HookFailure` — ``unavailable`` when the
server says nobody subscribes the subject (its no-responders status reaches a muxed inbox like
any reply) or nothing could be sent, ``timeout`` when the inbox's sweeper gave up on it (a
reply after that finds no one waiting and is dropped), ``overloaded`` without sending when
``SB_HOOK_MAX_IN_FLIGHT`` requests already wait. Answers always come on a later loop pass, so
a caller never sees its answer before :meth:`HookClient.call` returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from gateway.actions import HookCall, HookFailure
from shared.metrics import GatewayMetrics
from shared.request_mux import RawClient, Reply, RequestFailed, RequestMux
from shared.subjects import Subjects

HookAnswer = Callable[[bytes | HookFailure], None]
KIND_EVENT = "event"
KIND_CONNECT = "connect"


class HookClient:
    def __init__(self, nc: RawClient, subjects: Subjects, max_in_flight: int,
                 metrics: GatewayMetrics) -> None:
        self._nc = nc
        self._subjects = subjects
        self._max = max_in_flight
        self._metrics = metrics
        self._muxes: dict[int, RequestMux] = {}
        self.in_flight = 0

    async def start(self, timeouts_ms: Iterable[int]) -> None:
        """Subscribe one reply inbox per hook timeout of the namespace table."""
        for timeout_ms in sorted(set(timeouts_ms)):
            mux = RequestMux(self._nc, timeout_ms / 1000)
            await mux.start()
            self._muxes[timeout_ms] = mux

    def call(self, call: HookCall, answer: HookAnswer) -> None:
        loop = asyncio.get_running_loop()
        mux = self._muxes.get(call.timeout_ms)
        if self.in_flight >= self._max:
            loop.call_soon(answer, HookFailure.OVERLOADED)
            return
        if mux is None:
            loop.call_soon(answer, HookFailure.UNAVAILABLE)
            return
        if call.event is None:
            subject, kind = self._subjects.hook_connect(call.nsp), KIND_CONNECT
        else:
            subject, kind = self._subjects.hook_event(call.nsp, call.event), KIND_EVENT
        started = loop.time()

        def replied(replies: list[Reply] | None) -> None:
            self._done()
            if replies is None:
                answer(HookFailure.TIMEOUT)
            elif replies[0].status:  # 503 no responders; no other status answers a request
                answer(HookFailure.UNAVAILABLE)
            else:
                self._metrics.hook_seconds.labels(call.nsp, kind).observe(loop.time() - started)
                answer(replies[0].data)

        try:
            mux.send(subject, call.body, None, replied)
        except RequestFailed:
            loop.call_soon(answer, HookFailure.UNAVAILABLE)
            return
        self.in_flight += 1
        self._metrics.hook_in_flight.inc()

    def _done(self) -> None:
        self.in_flight -= 1
        self._metrics.hook_in_flight.dec()

    def close(self) -> None:
        """Every request still waiting is answered ``timeout``."""
        for mux in self._muxes.values():
            mux.close()


def unavailable(call: HookCall, answer: HookAnswer) -> None:
    """A gateway without NATS (in-memory tests): no application is ever reachable."""
    asyncio.get_running_loop().call_soon(answer, HookFailure.UNAVAILABLE)
