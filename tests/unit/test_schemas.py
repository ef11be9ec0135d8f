"""Payload schemas from files: compiled once per path, size rules reported as ``too_large``
and the rest as bad requests, ``x-sanitize`` text and html applied (nested fields too) to
payloads that passed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.schemas import SchemaViolation, compile_schema

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["text"],
    "properties": {
        "text": {"type": "string", "maxLength": 20, "x-sanitize": "text"},
        "html": {"type": "string", "x-sanitize": "html"},
        "plain": {"type": "string"},
        "count": {"type": "integer", "maximum": 5},
        "tags": {"type": "array", "maxItems": 2},
        "meta": {"type": "object", "properties": {
            "title": {"type": "string", "x-sanitize": "text"},
            "raw": {"type": "string"},
        }},
    },
}


def write(folder: Path, schema: dict[str, Any], name: str = "event.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(schema))
    return path


def test_a_schema_is_compiled_once_per_path(tmp_path: Path) -> None:
    path = write(tmp_path, SCHEMA)
    first = compile_schema(path)
    path.write_text(json.dumps({"type": "integer"}))  # read at the first compile only
    assert compile_schema(path) is first
    assert first({"text": "hi"}) == {"text": "hi"}


def test_a_valid_payload_passes_unchanged(tmp_path: Path) -> None:
    validate = compile_schema(write(tmp_path, SCHEMA))
    payload = {"text": "hello", "plain": "a\u202eb", "count": 5, "tags": ["x"], "extra": 1}
    assert validate(payload) == payload


@pytest.mark.parametrize(("payload", "too_large"), [
    ({"text": "x" * 21}, True),
    ({"text": "x", "count": 6}, True),
    ({"text": "x", "tags": [1, 2, 3]}, True),
    ({}, False),
    ({"text": 3}, False),
    ("not an object", False),
    ({"text": "x", "count": "5"}, False),
])
def test_violations_say_whether_a_size_rule_broke(tmp_path: Path, payload: Any,
                                                  too_large: bool) -> None:
    validate = compile_schema(write(tmp_path, SCHEMA))
    with pytest.raises(SchemaViolation) as caught:
        validate(payload)
    assert caught.value.too_large is too_large
    assert str(caught.value) == caught.value.message
    assert not caught.value.message.startswith("data")


def test_the_message_names_the_field_not_the_validator_variable(tmp_path: Path) -> None:
    validate = compile_schema(write(tmp_path, SCHEMA))
    with pytest.raises(SchemaViolation, match=r"^text must be") as caught:
        validate({"text": "x" * 21})
    assert caught.value.too_large
    with pytest.raises(SchemaViolation, match=r"^payload must contain"):
        validate({})


def test_text_fields_lose_control_and_bidi_characters_and_are_nfc(tmp_path: Path) -> None:
    validate = compile_schema(write(tmp_path, SCHEMA))
    out = validate({"text": "e\u0301\u202eabc\x07\n", "plain": "\u202e",
                    "meta": {"title": "ti\u200ftle", "raw": "\u200f"}})
    assert out == {"text": "\u00e9abc\n", "plain": "\u202e",
                   "meta": {"title": "title", "raw": "\u200f"}}


def test_html_fields_go_through_the_allow_list(tmp_path: Path) -> None:
    validate = compile_schema(write(tmp_path, SCHEMA))
    out = validate({"text": "t", "html": '<b onclick="steal()">hi</b><script>x()</script>'
                                         '<a href="javascript:alert(1)">link</a>'})
    html = out["html"]
    assert "<b>hi</b>" in html
    assert "script" not in html and "onclick" not in html and "javascript:" not in html
    assert "link" in html


def test_a_top_level_mark_cleans_a_string_payload(tmp_path: Path) -> None:
    validate = compile_schema(write(tmp_path, {"type": "string", "x-sanitize": "text"}))
    assert validate("a\u202eb") == "ab"


def test_a_schema_without_marks_returns_the_payload_itself(tmp_path: Path) -> None:
    validate = compile_schema(write(tmp_path, {"type": "object"}))
    payload = {"text": "\u202e"}
    assert validate(payload) is payload


def test_an_unknown_sanitizer_is_refused_at_compile_time(tmp_path: Path) -> None:
    path = write(tmp_path, {"type": "string", "x-sanitize": "markdown"})
    with pytest.raises(KeyError):
        compile_schema(path)
