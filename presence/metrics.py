"""The presence service's Prometheus metrics (``switchboard_presence_`` prefix).

Labels stay bounded: the notice kind and the announced event's kind — never a user or room.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.metrics import PREFIX

_P = f"{PREFIX}_presence"

NOTICE_KINDS = ("record", "typing", "boot", "invalid")
UPDATE_KINDS = ("online", "offline", "joined", "left", "count", "typing")


class PresenceMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.events = Counter(f"{_P}_events", "gateway notices taken from the work queue",
                              ["kind"], registry=r)
        self.updates = Counter(f"{_P}_updates",
                               "presence:update and typing events this replica announced",
                               ["event"], registry=r)
        self.reannounced = Counter(f"{_P}_reannounced",
                                   "events re-announced for a replica that died", registry=r)
        self.online = Gauge(f"{_P}_online_users", "users online, as announced", registry=r)
        self.replicas = Gauge(f"{_P}_replicas", "live presence replicas this one sees",
                              registry=r)
        self.queries = Counter(f"{_P}_queries", "room:presence queries answered", ["status"],
                               registry=r)
        self.ingest_seconds = Histogram(
            f"{_P}_ingest_seconds", "time to store one batch of notices", registry=r,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0))
        self.gateways_down = Counter(f"{_P}_gateways_down",
                                     "gateway runs whose sockets were closed by presence",
                                     registry=r)
        for kind in NOTICE_KINDS:  # every series exists from the start, at zero
            self.events.labels(kind)
        for kind in UPDATE_KINDS:
            self.updates.labels(kind)
