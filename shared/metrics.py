"""Prometheus metrics: ``switchboard_`` prefix, bounded labels (namespace, event, code,
stage — never a room or a user), and a registry injected per service so tests and several
services in one process never share counters."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from shared.protocol.events import CLIENT_EVENTS

CONTENT_TYPE = CONTENT_TYPE_LATEST
PREFIX = "switchboard"


def event_label(event: str) -> str:
    """Client-chosen event names are folded to ``other`` so labels stay bounded."""
    return event if event in CLIENT_EVENTS else "other"


HOOK_EVENT_LABELS = 100


class BoundedLabels:
    """Application event names as labels: the first ``limit`` distinct names of a namespace
    keep their own, every later one is ``other`` (clients choose names, labels must stay
    bounded)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: dict[str, set[str]] = {}

    def label(self, namespace: str, event: str) -> str:
        seen = self._seen.setdefault(namespace, set())
        if event in seen:
            return event
        if len(seen) >= self._limit:
            return "other"
        seen.add(event)
        return event


class NatsMetrics:
    """What every service reports about its NATS connection."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        self.connected = Gauge(f"{PREFIX}_nats_connected", "1 while connected to NATS",
                               ["service"], registry=registry).labels(service)
        self.reconnects = Counter(f"{PREFIX}_nats_reconnects", "NATS reconnections",
                                  ["service"], registry=registry).labels(service)
        self.disconnects = Counter(f"{PREFIX}_nats_disconnects", "NATS disconnections",
                                   ["service"], registry=registry).labels(service)
        self.errors = Counter(f"{PREFIX}_nats_errors", "NATS client errors",
                              ["service", "kind"], registry=registry)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.registry = registry
        self.nats = NatsMetrics(r, "gateway")
        self.connections = Gauge(f"{PREFIX}_gateway_connections",
                                 "open Engine.IO connections", registry=r)
        self.sockets = Gauge(f"{PREFIX}_gateway_sockets", "connected namespace sockets",
                             ["namespace"], registry=r)
        self.handshakes = Counter(f"{PREFIX}_gateway_handshakes", "upgrade decisions",
                                  ["result"], registry=r)
        self.auth_failures = Counter(f"{PREFIX}_gateway_auth_failures",
                                     "refused tokens", ["stage"], registry=r)
        self.packets_in = Counter(f"{PREFIX}_gateway_packets_in", "events received",
                                  ["namespace", "event"], registry=r)
        self.packets_out = Counter(f"{PREFIX}_gateway_packets_out",
                                   "event frames written to sockets", ["namespace"], registry=r)
        self.errors = Counter(f"{PREFIX}_gateway_request_errors", "failed requests",
                              ["namespace", "code"], registry=r)
        self.closes = Counter(f"{PREFIX}_gateway_closes", "transport closes by the server",
                              ["code"], registry=r)
        self.admissions = Counter(f"{PREFIX}_gateway_admissions",
                                  "per-user limit decisions (admitted/refused/unchecked)",
                                  ["result"], registry=r)
        self._delivery(r)
        self._hooks(r)
        self._polling(r)

    def _polling(self, r: CollectorRegistry) -> None:
        """The long-polling transport: sessions by transport, upgrades, requests forwarded to
        the gateway owning their session (and how long the owner took)."""
        self.sessions_opened = Counter(
            f"{PREFIX}_gateway_sessions_opened", "Engine.IO sessions opened, by the transport "
            "they started on", ["transport"], registry=r)
        self.lifecycle_failures = Counter(
            f"{PREFIX}_gateway_lifecycle_failures", "lifecycle events not stored (dropped: "
            "too many awaiting their ack; failed: not acknowledged)", ["kind"], registry=r)
        self.upgrades = Counter(f"{PREFIX}_gateway_upgrades",
                                "polling sessions upgraded to WebSocket", registry=r)
        self.forwarded = Counter(
            f"{PREFIX}_gateway_polling_forwarded", "polling requests of another gateway's "
            "session, forwarded to it (outcome: ok, gone, failed)", ["method", "outcome"],
            registry=r)
        self.opens_waiting = Gauge(
            f"{PREFIX}_gateway_opens_waiting", "namespace CONNECTs waiting for their turn "
            "(SB_MAX_OPENING are processed at once)", registry=r)
        self.takeovers = Counter(
            f"{PREFIX}_gateway_takeovers", "polling sessions moved between gateways by an upgrade "
            "that landed elsewhere (outcome: taken, given; failed: the owner gave nothing, "
            "refused: this owner could not hand over)", ["outcome"], registry=r)
        self.forward_seconds = Histogram(
            f"{PREFIX}_gateway_polling_forward_seconds", "forwarded POSTs: until the owner "
            "answered", buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r)

    def _hooks(self, r: CollectorRegistry) -> None:
        """Application hooks: requests by outcome and how long the application took."""
        self.hook_requests = Counter(
            f"{PREFIX}_gateway_hook_requests", "application hook requests by outcome (ok, "
            "error: the application's own error, timeout, unavailable, overloaded, internal: "
            "a malformed reply)", ["namespace", "kind", "event", "outcome"], registry=r)
        self.hook_seconds = Histogram(
            f"{PREFIX}_gateway_hook_seconds", "from a hook request sent to its reply (answered "
            "requests only)", ["namespace", "kind"], registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
        self.hook_in_flight = Gauge(f"{PREFIX}_gateway_hook_in_flight",
                                    "hook requests awaiting a reply", registry=r)
        self.hook_events = BoundedLabels(HOOK_EVENT_LABELS)

    def _delivery(self, r: CollectorRegistry) -> None:
        """What happens to messages: published, fanned out, repaired, replayed, recovered."""
        self.published = Counter(f"{PREFIX}_gateway_published", "messages published to NATS",
                                 ["namespace"], registry=r)
        self.fanout_in = Counter(f"{PREFIX}_gateway_fanout_messages",
                                 "messages received from NATS for local rooms",
                                 ["namespace"], registry=r)
        self.rooms = Gauge(f"{PREFIX}_gateway_rooms", "rooms with local members", registry=r)
        self.gap_repairs = Counter(f"{PREFIX}_gateway_gap_repairs",
                                   "gaps in a room's prev chain fetched from the log",
                                   ["namespace"], registry=r)
        self.repaired = Counter(f"{PREFIX}_gateway_repaired_messages",
                                "messages delivered from the log to fill gaps",
                                ["namespace"], registry=r)
        self.replayed = Counter(f"{PREFIX}_gateway_replayed_messages",
                                "messages replayed to recovering or catching-up sockets",
                                ["namespace"], registry=r)
        self.recoveries = Counter(f"{PREFIX}_gateway_recoveries",
                                  "recovery attempts by result (recovered/fresh)",
                                  ["namespace", "result"], registry=r)
        self.delivery_lag = Histogram(
            f"{PREFIX}_gateway_delivery_lag_seconds",
            "from the publishing gateway accepting a message (its ts) to this gateway handing "
            "it to local members, live messages only (1 in 8)", ["namespace"], registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
        self.fanout_seconds = Histogram(
            f"{PREFIX}_gateway_fanout_seconds", "time to hand one message to local members "
            "(every message for more than 64 local members, 1 in 8 of the others)",
            registry=r, buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0))


class WriteStats:
    """Output coalescing, read from plain counters at scrape time (a Prometheus counter's
    ``inc`` per frame would cost more than the frame): flush passes, socket writes and the
    frames they carried, so ``frames / writes`` shows how many frames one write joins."""

    def __init__(self, registry: CollectorRegistry,
                 read: Callable[[], tuple[int, int, int]]) -> None:
        self._read = read
        registry.register(self)

    def collect(self) -> Iterator[Metric]:
        passes, writes, frames = self._read()
        for name, doc, value in (
            ("flush_passes", "event-loop passes that flushed socket output", passes),
            ("socket_writes", "transport writes of queued frames", writes),
            ("frames_written", "frames carried by those writes", frames),
        ):
            family = CounterMetricFamily(f"{PREFIX}_gateway_{name}", doc)
            family.add_metric([], value)
            yield family


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
