"""``SB_NAMESPACES_FILE``: the application's namespaces, declared in TOML, checked whole.

A deployment declares its own namespaces (and may change the keys the table allows for a
built-in one) in ``[namespaces."/name"]`` tables with the keys and defaults of DESIGN.md's
"Application namespaces and handlers". Every service reads the same file at start-up, so a
mistake must stop them all there, before any port is bound, with one line that names the
namespace, the key and the problem: :class:`NamespacesFileError` carries the three, and
:func:`parse_namespaces` is a pure function of the text so every rule is tested by calls.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from shared.namespaces import BUILT_IN, FIXED_FOR_BUILT_IN, NamespaceSpec, NamespaceTable
from shared.subjects import Subjects

NAME_RE = re.compile(r"/[A-Za-z0-9_-]{1,64}")
HEADER_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")
"""An HTTP field name (RFC 9110 token), which ``hook_headers`` lists."""
HOOK_TIMEOUT_MAX_MS = 300_000
HOOK_CONCURRENCY_MAX = 1_000
HOOK_HEADERS_MAX = 32
EVENT_RATE_MAX = 100_000


class NamespacesFileError(ValueError):
    """The file cannot be used; ``namespace`` and ``key`` say where (``None`` when the
    problem is the whole file), ``problem`` what."""

    def __init__(self, problem: str, namespace: str | None = None,
                 key: str | None = None) -> None:
        self.problem, self.namespace, self.key = problem, namespace, key
        where = [] if namespace is None else [f"namespace {namespace!r}"]
        if key is not None:
            where.append(f"key {key!r}")
        super().__init__(f"{', '.join(where)}: {problem}" if where else problem)


def _kind(value: object) -> str:
    kinds = {bool: "a boolean", int: "an integer", float: "a float", str: "a string",
             list: "an array", dict: "a table"}
    kind = kinds.get(type(value), "a date or time")
    return f"{kind} ({value!r})" if isinstance(value, (bool, int, float, str)) else kind


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {_kind(value)}")
    return value


def _auth(value: object) -> str:
    if value not in ("jwt", "hook") or not isinstance(value, str):
        raise ValueError(f'expected "jwt" or "hook", got {_kind(value)}')
    return value


def _integer(low: int, high: int) -> Callable[[object], int]:
    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {_kind(value)}")
        if not low <= value <= high:
            raise ValueError(f"must be between {low:_} and {high:_}, got {value:_}")
        return value
    return check


def _rate(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number (events per second), got {_kind(value)}")
    if not math.isfinite(value) or not 0 < value <= EVENT_RATE_MAX:
        raise ValueError(f"must be more than 0 and at most {EVENT_RATE_MAX:_}, got {value}")
    return float(value)


def _headers(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"expected an array of header names, got {_kind(value)}")
    if len(value) > HOOK_HEADERS_MAX:
        raise ValueError(f"lists {len(value)} headers; at most {HOOK_HEADERS_MAX}")
    for item in value:
        if not HEADER_RE.fullmatch(item):
            raise ValueError(f"{item!r} is not an HTTP header name")
    return tuple(dict.fromkeys(item.lower() for item in value))


CHECKS: dict[str, Callable[[object], Any]] = {
    "durable": _boolean,
    "presence": _boolean,
    "auth": _auth,
    "hooks": _boolean,
    "hook_timeout_ms": _integer(1, HOOK_TIMEOUT_MAX_MS),
    "hook_concurrency": _integer(1, HOOK_CONCURRENCY_MAX),
    "hook_headers": _headers,
    "event_rate": _rate,
    "event_burst": _integer(1, EVENT_RATE_MAX),
}
"""Every key a namespace table may hold, with its check (the value as the spec keeps it)."""


def _keys(name: str, keys: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in keys.items():
        check = CHECKS.get(key)
        if check is None:
            raise NamespacesFileError(f"unknown key (the keys are {', '.join(CHECKS)})",
                                      name, key)
        try:
            values[key] = check(value)
        except ValueError as exc:
            raise NamespacesFileError(str(exc), name, key) from None
    return values


def _spec(name: str, keys: object, base: NamespaceTable) -> NamespaceSpec:
    """One declared namespace; a built-in one keeps what the file may not change."""
    builtin = base.get(name)
    if builtin is None and not NAME_RE.fullmatch(name):
        raise NamespacesFileError("a name is '/' and 1-64 characters of [A-Za-z0-9_-]", name)
    if not isinstance(keys, dict):
        raise NamespacesFileError(f"expected a table of keys, got {_kind(keys)}", name)
    values = _keys(name, keys)
    if builtin is None:
        return NamespaceSpec(name, **values)
    for key in FIXED_FOR_BUILT_IN:
        fixed = getattr(builtin, key)
        if key in values and values[key] != fixed:
            raise NamespacesFileError(
                f"fixed at {str(fixed).lower()} for a built-in namespace", name, key)
    return replace(builtin, **values)


def _table(base: NamespaceTable, declared: list[NamespaceSpec]) -> NamespaceTable:
    """``base`` with ``declared`` merged in, refusing a declared name whose subject token or
    room-log stream another namespace (or the inbox or presence stream) already has."""
    names = {spec.name: spec for spec in [*base.values(), *declared]}
    tokens: dict[str, str] = {}
    for spec in names.values():
        other = tokens.setdefault(spec.token, spec.name)
        if other != spec.name:
            raise NamespacesFileError(
                f"its subject token {spec.token!r} is already that of namespace {other!r}",
                spec.name)
    table = base.merged(declared)
    subjects = Subjects(namespaces=table)
    streams = {subjects.inbox_stream(): "the offline inbox",
               subjects.presence_stream(): "the presence queue",
               subjects.lifecycle_stream(): "the lifecycle stream"}
    for nsp in (name for name in table if name in table.durable):
        stream = subjects.log_stream(nsp)
        other = streams.setdefault(stream, f"namespace {nsp!r}")
        if other != f"namespace {nsp!r}":
            raise NamespacesFileError(
                f"its room log's stream name {stream} is already that of {other}", nsp)
    return table


def parse_namespaces(text: str, base: NamespaceTable = BUILT_IN) -> NamespaceTable:
    """The table ``text`` declares, merged into ``base``; :class:`NamespacesFileError` for
    anything the contract does not allow (nothing is defaulted around a mistake)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise NamespacesFileError(f"not valid TOML: {exc}") from None
    for key in document:
        if key != "namespaces":
            raise NamespacesFileError(f"unknown top-level key {key!r}; namespaces are "
                                      'declared in [namespaces."/name"] tables')
    declared = document.get("namespaces", {})
    if not isinstance(declared, dict):
        raise NamespacesFileError('"namespaces" must hold [namespaces."/name"] tables, '
                                  f"got {_kind(declared)}")
    return _table(base, [_spec(name, keys, base) for name, keys in declared.items()])


def load_namespaces(path: str | Path, base: NamespaceTable = BUILT_IN) -> NamespaceTable:
    """Read and parse the file at ``path`` (relative to the working directory)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise NamespacesFileError(f"cannot read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise NamespacesFileError("not UTF-8 text") from None
    return parse_namespaces(text, base)
