"""Parsed deploy files, read once per session by the structure tests."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.files import COMPOSE, K8S, PROMETHEUS_CONFIG, load_all_yaml, load_yaml


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(COMPOSE)
    return document


@pytest.fixture(scope="session")
def prometheus_config() -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(PROMETHEUS_CONFIG)
    return document


@pytest.fixture(scope="session")
def k8s_objects() -> list[dict[str, Any]]:
    """Every object of the manifests kustomization.yaml applies, in file order."""
    kustomization = load_yaml(K8S / "kustomization.yaml")
    objects: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        objects.extend(load_all_yaml(K8S / resource))
    return objects
