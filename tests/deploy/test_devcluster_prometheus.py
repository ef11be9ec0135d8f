"""``python -m devcluster --prometheus``: the command line, and a scrape config that gives the
same jobs and rules as the compose stack (the live run is in test_live_prometheus.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from devcluster import prometheus
from devcluster.__main__ import parse_args
from devcluster.layout import Options, plan
from tests.deploy.files import RULES


def test_prometheus_is_off_unless_asked() -> None:
    options, extra = parse_args(["--gateways", "3"])
    assert options == Options(gateways=3) and extra is None


def test_prometheus_options_from_the_command_line() -> None:
    _, extra = parse_args(["--prometheus", "--prometheus-port", "9999",
                           "--prometheus-interval", "0.5"])
    assert extra == prometheus.PrometheusOptions(port=9999, interval=0.5)


def test_scrape_config_has_the_compose_jobs_and_rules(prometheus_config: dict[str, Any]
                                                      ) -> None:
    layout = plan(Options(gateways=2), 40001, 40002)
    config = json.loads(prometheus.scrape_config(layout, 0.5, 8090, RULES))
    jobs = {job["job_name"]: job["static_configs"][0]["targets"]
            for job in config["scrape_configs"]}
    assert jobs == {"gateway": ["127.0.0.1:8001", "127.0.0.1:8002"],
                    "router": ["127.0.0.1:40001"], "presence": ["127.0.0.1:40002"],
                    "prometheus": ["127.0.0.1:8090"]}
    compose_jobs = {job["job_name"] for job in prometheus_config["scrape_configs"]}
    assert set(jobs) <= compose_jobs, "the rules and dashboard select on these job names"
    assert config["global"]["scrape_interval"] == "500ms"
    assert config["rule_files"] == [str(RULES)] and Path(prometheus.RULES) == RULES


def test_a_missing_binary_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(prometheus.PrometheusError, match="apt-get install prometheus"):
        prometheus.find_prometheus()
