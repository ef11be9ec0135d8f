"""The router's Prometheus metrics (``switchboard_router_`` prefix), on the service's registry.

Labels stay bounded: the operation (one of :data:`router.requests.OPERATIONS`, or
``other``), the transport (``http`` or ``nats``) and the HTTP status — never a user, room or
gateway id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from router.requests import OPERATIONS
from shared.metrics import PREFIX

_P = f"{PREFIX}_router"


def operation_label(operation: str) -> str:
    return operation if operation in OPERATIONS else "other"


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.requests = Counter(f"{_P}_api_requests", "server API requests answered",
                                ["operation", "transport", "status"], registry=r)
        self.seconds = Histogram(
            f"{_P}_api_request_seconds", "time to answer a server API request",
            ["operation"], registry=r,
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0))
        self.kicked = Counter(f"{_P}_kicked_connections",
                              "connections closed by kick requests", registry=r)
        self.kick_unreached = Counter(f"{_P}_kick_unreached_gateways",
                                      "gateways that did not answer a kick request",
                                      registry=r)
        self.reaps = Counter(f"{_P}_gateway_reaps",
                             "dead gateways whose registry entries were cleaned up",
                             ["status"], registry=r)
        self.reaped_users = Counter(f"{_P}_reaped_users",
                                    "user entries a dead gateway's connections were dropped from",
                                    registry=r)
