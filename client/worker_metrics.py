"""What a worker reports: requests answered by namespace, event and outcome, and how long
they took. Labels stay bounded: events are the registered names (anything else is
``other``), outcomes ``ok`` or the error code the reply carries."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from client.worker_dedup import Reply
from shared.metrics import PREFIX

CONNECT_LABEL = "connect"
"""The connect hook's event label (``connect`` is reserved, so no client event has it)."""


def outcome(reply: Reply) -> str:
    """``ok``, or the reply's error code (``refused`` for a refusal without one)."""
    if reply.get("ok") is True:
        return "ok"
    error = reply.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else "refused"


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(f"{PREFIX}_worker_requests", "hook requests answered",
                                ["namespace", "event", "outcome"], registry=registry)
        self.seconds = Histogram(f"{PREFIX}_worker_request_seconds",
                                 "time from a hook request's arrival to its reply",
                                 ["namespace", "event"], registry=registry)
        self.in_flight = Gauge(f"{PREFIX}_worker_in_flight", "hook requests being handled",
                               registry=registry)

    def answered(self, namespace: str, event: str, reply: Reply, seconds: float) -> None:
        self.requests.labels(namespace, event, outcome(reply)).inc()
        self.seconds.labels(namespace, event).observe(seconds)
