"""Loader for the golden wire fixtures in ``tests/fixtures/packets.json``."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

PACKETS_JSON = Path(__file__).resolve().parents[1] / "fixtures" / "packets.json"


@cache
def _load() -> dict[str, list[dict[str, Any]]]:
    loaded: dict[str, list[dict[str, Any]]] = json.loads(PACKETS_JSON.read_text("utf-8"))
    return loaded


def socketio_cases() -> list[dict[str, Any]]:
    return _load()["socketio"]


def engineio_cases() -> list[dict[str, Any]]:
    return _load()["engineio"]


def fill_placeholders(value: Any, attachments: list[bytes]) -> Any:
    """The fixture's view of reassembly, written independently of the codec under test."""
    if isinstance(value, dict):
        if set(value) == {"_placeholder", "num"} and value["_placeholder"] is True:
            return attachments[value["num"]]
        return {key: fill_placeholders(item, attachments) for key, item in value.items()}
    if isinstance(value, list):
        return [fill_placeholders(item, attachments) for item in value]
    return value
