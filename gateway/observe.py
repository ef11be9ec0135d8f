"""The core's observations as metrics: events handled, failures, hook outcomes.

The session core says what it saw (:class:`~gateway.actions.Observed`, ``Failed``,
``HookObserved``); this is the one place that turns those into counters with bounded labels.
"""

from __future__ import annotations

from gateway.actions import CONNECT_EVENT, Failed, HookObserved, Observed
from shared.metrics import GatewayMetrics, event_label
from shared.protocol.errors import ErrorCode

Observation = Observed | Failed | HookObserved


def observe(metrics: GatewayMetrics, seen: Observation) -> None:
    if isinstance(seen, Failed):
        metrics.errors.labels(seen.nsp, seen.error).inc()
    elif isinstance(seen, HookObserved):
        metrics.hook_requests.labels(seen.nsp, seen.kind, metrics.hook_events.label(
            seen.nsp, seen.event), seen.outcome).inc()
    elif seen.event == CONNECT_EVENT:
        if seen.error == ErrorCode.UNAUTHORIZED:
            metrics.auth_failures.labels("connect").inc()
    else:
        metrics.packets_in.labels(seen.nsp, event_label(seen.event)).inc()
        if seen.error is not None:
            metrics.errors.labels(seen.nsp, seen.error).inc()
