"""Event payload schemas: JSON Schema files compiled once into fast validators.

Operators add a schema for their own events by dropping a file next to the namespace config;
no Python is needed. Violations of a size rule are ``too_large``, everything else
``bad_request``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import fastjsonschema

_SIZE_RULES = frozenset({"maxLength", "maxItems", "maxProperties", "maximum"})


class SchemaViolation(ValueError):
    def __init__(self, message: str, too_large: bool) -> None:
        super().__init__(message)
        self.message = message
        self.too_large = too_large


@cache
def compile_schema(path: Path) -> Callable[[Any], Any]:
    """Compile the schema at ``path`` (once per process) into a raising validator."""
    validator = fastjsonschema.compile(json.loads(path.read_text()))

    def validate(data: Any) -> Any:
        try:
            return validator(data)
        except fastjsonschema.JsonSchemaValueException as exc:
            message = exc.message.replace("data.", "", 1).replace("data ", "payload ", 1)
            raise SchemaViolation(message, exc.rule in _SIZE_RULES) from None

    return validate
