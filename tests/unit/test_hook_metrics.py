"""Hook metrics keep bounded labels: the first 100 event names of a namespace, then
``other``; the core's observations land on the right counters."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from gateway.actions import Failed, HookObserved, Observed
from gateway.observe import observe
from shared.metrics import BoundedLabels, GatewayMetrics


def test_event_labels_are_bounded_per_namespace() -> None:
    labels = BoundedLabels(2)
    assert [labels.label("/a", name) for name in ("x", "y", "z", "x")] == ["x", "y", "other", "x"]
    assert labels.label("/b", "z") == "z"


def test_observations_become_counters() -> None:
    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry)
    observe(metrics, HookObserved("/orders", "event", "order:place", "timeout"))
    observe(metrics, Failed("/orders", "timeout"))
    observe(metrics, Observed("/orders", "order:place"))
    assert registry.get_sample_value("switchboard_gateway_hook_requests_total", {
        "namespace": "/orders", "kind": "event", "event": "order:place",
        "outcome": "timeout"}) == 1
    assert registry.get_sample_value("switchboard_gateway_request_errors_total", {
        "namespace": "/orders", "code": "timeout"}) == 1
    assert registry.get_sample_value("switchboard_gateway_packets_in_total", {
        "namespace": "/orders", "event": "other"}) == 1
