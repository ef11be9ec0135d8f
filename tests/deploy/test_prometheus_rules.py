"""The scrape config and alert rules: valid for Prometheus, unit-tested, and about real metrics.

``promtool`` (Debian's ``prometheus`` package) checks the syntax and runs the rules' unit
tests in deploy/prometheus/alerts_test.yml; where it is not installed those three tests skip
and say so, and the checks against the code below still run.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from shared.protocol.errors import CloseCode, ErrorCode
from tests.deploy.files import ALERT_TESTS, DEPLOY, PROMETHEUS_CONFIG, RULES, load_yaml
from tests.deploy.promql import exported_names, rule_queries

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool not installed (Debian: apt-get install prometheus)")

REQUIRED_ALERTS = {
    "gateway down": "SwitchboardGatewayDown",
    "NATS disconnected": "SwitchboardNatsDisconnected",
    "slow-consumer spike": "SwitchboardSlowConsumerSpike",
    "rate-limit spike": "SwitchboardRateLimitSpike",
    "recovery failures": "SwitchboardRecoveryFailures",
    "delivery lag": "SwitchboardDeliveryLagHigh",
    "error ratio": "SwitchboardErrorRatioHigh",
}


def promtool(*args: str) -> str:
    proc = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60,
                          check=False, cwd=DEPLOY / "prometheus")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def alerts() -> list[dict[str, Any]]:
    rules = load_yaml(RULES)
    return [rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule]


@needs_promtool
def test_promtool_accepts_the_config_and_rules() -> None:
    promtool("check", "config", str(PROMETHEUS_CONFIG))
    promtool("check", "rules", str(RULES))


@needs_promtool
def test_promtool_unit_tests_of_the_rules_pass() -> None:
    assert "SUCCESS" in promtool("test", "rules", str(ALERT_TESTS))


def test_the_rules_file_is_where_tools_look() -> None:
    """DESIGN.md: one alert-rules file named ``*rules*.yml``, loaded by the scrape config."""
    found = sorted(path.name for path in (DEPLOY / "prometheus").glob("*rules*.yml"))
    assert found == [RULES.name]
    assert load_yaml(PROMETHEUS_CONFIG)["rule_files"] == [RULES.name]
    assert load_yaml(ALERT_TESTS)["rule_files"] == [RULES.name]


def test_the_issue_s_alerts_exist_with_severity_and_explanation() -> None:
    by_name = {rule["alert"]: rule for rule in alerts()}
    for what, name in REQUIRED_ALERTS.items():
        assert name in by_name, f"no alert for {what}"
    for rule in by_name.values():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_alert_is_unit_tested_firing() -> None:
    tested = load_yaml(ALERT_TESTS)["tests"]
    firing = {case["alertname"] for test in tested for case in test["alert_rule_test"]
              if case["exp_alerts"]}
    assert {rule["alert"] for rule in alerts()} <= firing


def test_rule_metrics_exist_in_the_code() -> None:
    exported = exported_names()
    for query in rule_queries():
        missing = query.metric_names() - exported
        assert not missing, f"{query.where} uses {sorted(missing)}, which no service exports"


def test_rule_code_labels_are_real_codes() -> None:
    """A typo in ``code="4008"`` would make an alert that can never fire."""
    codes = {str(int(code)) for code in CloseCode} | {str(code) for code in ErrorCode}
    for query in rule_queries():
        assert query.code_values() <= codes, f"{query.where}: {query.code_values() - codes}"
