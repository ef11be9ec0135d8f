"""The one front door both transports call: rate limit, validate, execute, count.

HTTP and NATS differ only in how a call arrives (path and bearer key vs subject and body);
from the decoded ``(operation, body, user)`` on, every rule lives here, with the clock passed
in.
"""

from __future__ import annotations

import logging
import time

from router.answers import Answer, Failure, failed, internal, rate_limited
from router.metrics import RouterMetrics, operation_label
from router.operations import Operations
from router.requests import parse
from shared.namespaces import BUILT_IN, NamespaceTable
from shared.ratelimit import TokenBucket

log = logging.getLogger(__name__)


class Api:
    def __init__(self, operations: Operations, bucket: TokenBucket,
                 metrics: RouterMetrics | None = None,
                 namespaces: NamespaceTable = BUILT_IN) -> None:
        self._operations = operations
        self._namespaces = namespaces
        self._bucket = bucket
        self._metrics = metrics

    async def handle(self, operation: str, body: object | Failure, user: object, now: float,
                     transport: str = "http") -> Answer:
        """Answer one call. ``body`` is the decoded JSON body, or the failure decoding it
        gave; ``now`` is the monotonic clock in seconds."""
        started = time.perf_counter()
        answer = await self._answer(operation, body, user, now)
        self.count(operation, transport, answer, time.perf_counter() - started)
        return answer

    async def _answer(self, operation: str, body: object | Failure, user: object,
                      now: float) -> Answer:
        wait_ms = self._bucket.take(now)
        if wait_ms:
            return failed(rate_limited(wait_ms))
        if isinstance(body, Failure):
            return failed(body)
        request = parse(operation, body, user, self._namespaces)
        if isinstance(request, Failure):
            return failed(request)
        try:
            return await self._operations.execute(request)
        except Exception:  # bad input never crashes the router; a bug is a 500 and a trace
            log.exception("server API %s failed", operation_label(operation))
            return failed(internal())

    def count(self, operation: str, transport: str, answer: Answer,
              seconds: float | None = None) -> None:
        """Count an answer (also the ones a shell gives itself, such as a 401)."""
        if self._metrics is None:
            return
        label = operation_label(operation)
        self._metrics.requests.labels(label, transport, str(answer.status)).inc()
        if seconds is not None:
            self._metrics.seconds.labels(label).observe(seconds)
        if label == "kick" and answer.status == 200:
            self._metrics.kicked.inc(answer.body.get("kicked", 0))
            self._metrics.kick_unreached.inc(answer.body.get("unreached", 0))
