"""The Grafana dashboard and its provisioning: well-formed, complete, and about real metrics.

Whether each query returns data is shown against a live Prometheus in
test_live_prometheus.py; here, in milliseconds, that the JSON is what Grafana loads, that the
issue's panels are there and that every metric name exists in the code.
"""

from __future__ import annotations

import json
from typing import Any

from shared.protocol.errors import CloseCode, ErrorCode
from tests.deploy.files import COMPOSE, DASHBOARD, DEPLOY, load_yaml
from tests.deploy.promql import dashboard_queries, exported_names

REQUIRED = {
    "connections": "switchboard_gateway_connections",
    "handshakes": "switchboard_gateway_handshakes_total",
    "handshake failures": "switchboard_gateway_auth_failures_total",
    "messages in": "switchboard_gateway_packets_in_total",
    "messages out": "switchboard_gateway_packets_out_total",
    "delivery lag": "switchboard_gateway_delivery_lag_seconds_bucket",
    "fan-out time": "switchboard_gateway_fanout_seconds_bucket",
    "recoveries": "switchboard_gateway_recoveries_total",
    "slow consumers / closes": "switchboard_gateway_closes_total",
    "rate limits": "switchboard_gateway_request_errors_total",
    "presence": "switchboard_presence_online_users",
    "presence events": "switchboard_presence_updates_total",
    "router": "switchboard_router_api_requests_total",
    "NATS": "switchboard_nats_connected",
}


def dashboard() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return document


def test_dashboard_is_well_formed_for_grafana() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        assert all(target["expr"].strip() for target in panel["targets"])


def test_the_issue_s_panels_are_there() -> None:
    used = set().union(*(query.metric_names() for query in dashboard_queries()))
    for what, metric in REQUIRED.items():
        assert metric in used, f"no panel shows {what} ({metric})"
    exprs = " ".join(query.expr for query in dashboard_queries())
    assert 'code="4008"' in exprs and 'code="rate_limited"' in exprs
    assert "histogram_quantile(0.99" in exprs and "histogram_quantile(0.5" in exprs
    assert "by (namespace)" in exprs


def test_dashboard_metrics_exist_in_the_code() -> None:
    exported = exported_names()
    for query in dashboard_queries():
        missing = query.metric_names() - exported
        assert not missing, f"{query.where} uses {sorted(missing)}, which no service exports"
    codes = {str(int(code)) for code in CloseCode} | {str(code) for code in ErrorCode}
    for query in dashboard_queries():
        assert query.code_values() <= codes, f"{query.where}: {query.code_values() - codes}"


def test_grafana_provisioning_points_at_the_dashboard_and_prometheus() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    (source,) = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["current"]["value"] == source["uid"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    (provider,) = load_yaml(provisioning / "dashboards" / "switchboard.yml")["providers"]
    grafana = load_yaml(COMPOSE)["services"]["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    assert grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == \
        f"{provider['options']['path']}/{DASHBOARD.name}"
