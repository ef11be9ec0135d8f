"""Where the deploy files are, and how the tests read them.

YAML comes from PyYAML; without it a test that needs it skips with the reason rather than
passing on a partial reading (pyproject's test extra is the place that installs it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
K8S = DEPLOY / "k8s"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "switchboard.json"
RULES = DEPLOY / "prometheus" / "switchboard-rules.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts_test.yml"
HAPROXY = DEPLOY / "lb" / "haproxy.cfg"
NATS_CONF = DEPLOY / "nats" / "nats.conf"
DOCKERFILE = DEPLOY / "Dockerfile"


def _yaml() -> Any:
    return pytest.importorskip("yaml", reason="PyYAML is needed to read the deploy files "
                               "(pip install pyyaml; part of the test extra)")


def load_yaml(path: Path) -> Any:
    return _yaml().safe_load(path.read_text())


def load_all_yaml(path: Path) -> list[Any]:
    return [doc for doc in _yaml().safe_load_all(path.read_text()) if doc is not None]
