"""What the deploy files ask of the code: metric names in PromQL, dashboard targets, rules.

Both the static tests (names exist in the code) and the live test (queries return data from a
real Prometheus) read the dashboard and the rules through here, so they check the same set.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from tests.deploy.files import DASHBOARD, RULES, load_yaml

RATE_INTERVAL = "30s"
"""What ``$__rate_interval`` stands for when a test evaluates a dashboard query itself."""

_NAME = re.compile(r"\bswitchboard_[a-zA-Z0-9_]+\b")
_CODE_VALUE = re.compile(r'\bcode\s*=~?\s*"([^"]*)"')
_PACKAGES = ("shared", "gateway", "router", "presence")


@dataclass(frozen=True, slots=True)
class Query:
    """One PromQL expression and where it comes from (for failure messages)."""

    where: str
    expr: str

    def metric_names(self) -> set[str]:
        return set(_NAME.findall(self.expr))

    def code_values(self) -> set[str]:
        """Values of ``code`` label matchers (``=`` and ``=~`` alternatives)."""
        values: set[str] = set()
        for pattern in _CODE_VALUE.findall(self.expr):
            values.update(part for part in pattern.split("|") if part)
        return values

    def evaluable(self) -> str:
        """The expression with Grafana's variables replaced, as Prometheus can run it."""
        return self.expr.replace("$__rate_interval", RATE_INTERVAL)


def dashboard_queries() -> list[Query]:
    """Every target of every panel (rows included), in dashboard order."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            queries.append(Query(f"panel {panel['title']!r} target {target['refId']}",
                                 target["expr"]))
    return queries


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    flat = []
    for panel in panels:
        flat.append(panel)
        flat.extend(_panels(panel.get("panels", [])))
    return flat


def rule_queries() -> list[Query]:
    """Every alert or recording rule's expression."""
    rules = load_yaml(RULES)
    return [Query(f"rule {rule.get('alert') or rule.get('record')}", rule["expr"])
            for group in rules["groups"] for rule in group["rules"]]


def exported_names() -> set[str]:
    """The sample names the services can expose (``_total``, ``_bucket``... included).

    Every ``*Metrics`` class in the service packages is instantiated on a fresh registry, the
    way the services do, so a name built with f-strings counts exactly as it is exposed.
    """
    names: set[str] = set()
    for cls in _metrics_classes():
        registry = CollectorRegistry()
        try:
            _instantiate(cls, registry)
        except TypeError:
            continue  # not a registry-taking metrics holder
        for family in registry.collect():
            names.update(_sample_names(family.name, family.type))
    return names


def _metrics_classes() -> list[type]:
    classes: dict[str, type] = {}
    for package_name in _PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            if info.name.rsplit(".", 1)[-1] == "__main__":
                continue  # running a service is not importing it
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if (inspect.isclass(value) and name.endswith("Metrics")
                        and value.__module__ == module.__name__):
                    classes[f"{module.__name__}.{name}"] = value
    return list(classes.values())


def _instantiate(cls: type, registry: CollectorRegistry) -> None:
    parameters = list(inspect.signature(cls).parameters.values())
    if not parameters or parameters[0].name != "registry":
        raise TypeError(f"{cls.__name__} does not take a registry first")
    args: list[Any] = [registry]
    for parameter in parameters[1:]:
        if parameter.default is inspect.Parameter.empty:
            args.append("test")  # e.g. NatsMetrics(registry, service)
    cls(*args)


def _sample_names(name: str, kind: str) -> set[str]:
    if kind == "counter":
        return {f"{name}_total"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    if kind == "summary":
        return {name, f"{name}_count", f"{name}_sum"}
    return {name}
