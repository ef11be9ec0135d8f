"""Event payload schemas: JSON Schema files compiled once into fast validators.

Operators add a schema for their own events by dropping a file next to the namespace config;
no Python is needed. Violations of a size rule are ``too_large``, everything else
``bad_request``. A string property marked ``"x-sanitize": "text"`` is NFC-normalised and
stripped of control and Bidi_Control characters after validation; ``"x-sanitize": "html"``
goes through an allow-list HTML sanitiser (nh3): script, event handlers and ``javascript:``
URLs never reach another client.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema
import nh3

from shared.sanitize import clean_text

_SIZE_RULES = frozenset({"maxLength", "maxItems", "maxProperties", "maximum"})


class SchemaViolation(ValueError):
    def __init__(self, message: str, too_large: bool) -> None:
        super().__init__(message)
        self.message = message
        self.too_large = too_large


SANITIZERS: dict[str, Callable[[str], str]] = {"text": clean_text, "html": nh3.clean}


@cache
def compile_schema(path: Path) -> Callable[[Any], Any]:
    """Compile the schema at ``path`` (once per process) into a function that validates a
    payload and returns it sanitised (raising :class:`SchemaViolation`)."""
    schema = json.loads(path.read_text())
    validator = fastjsonschema.compile(schema)
    sanitize = _sanitizer(schema)

    def validate(data: Any) -> Any:
        try:
            validator(data)
        except fastjsonschema.JsonSchemaValueException as exc:
            message = exc.message.replace("data.", "", 1).replace("data ", "payload ", 1)
            raise SchemaViolation(message, exc.rule in _SIZE_RULES) from None
        return sanitize(data)

    return validate


def _sanitizer(schema: dict[str, Any]) -> Callable[[Any], Any]:
    """What the schema's ``x-sanitize`` marks say to do to a valid payload (nested objects
    included), worked out once."""
    kind = schema.get("x-sanitize")
    if kind is not None:
        clean = SANITIZERS[kind]
        return lambda value: clean(value) if isinstance(value, str) else value
    fields = {name: _sanitizer(sub) for name, sub in schema.get("properties", {}).items()
              if isinstance(sub, dict) and _marks(sub)}
    if not fields:
        return lambda value: value

    def sanitize(value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {key: fields[key](item) if key in fields else item for key, item in value.items()}

    return sanitize


def _marks(schema: dict[str, Any]) -> bool:
    if "x-sanitize" in schema:
        return True
    return any(isinstance(sub, dict) and _marks(sub)
               for sub in schema.get("properties", {}).values())
