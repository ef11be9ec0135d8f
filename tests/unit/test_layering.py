"""The module map of docs/architecture.md, held against the code.

Who may import whom: the three services never import each other; ``shared/`` imports no
service; the wire contract (``shared/protocol/``) imports nothing of the project outside
itself; the Python SDK (``client/``) imports only ``shared/``; nothing imports ``devcluster``
or ``bench``. And the sizes: no module over 400 lines and no function over 40 lines outside
``devcluster/``; every module with logic is imported by a test module of its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "gateway", "router", "presence", "client", "devcluster")
SERVICES = frozenset({"gateway", "router", "presence"})
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 40


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def dotted(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Absolute project imports of one module (relative imports are not used here)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] in (*PACKAGES, "bench")}


def allowed(importer: str, imported: str) -> bool:
    source, target = importer.split(".")[0], imported.split(".")[0]
    if target in ("devcluster", "bench"):
        return source == target
    if importer.startswith("shared.protocol"):
        return imported.startswith("shared.protocol")
    if source == "shared":
        return target == "shared"
    if source == "client":
        return target in ("client", "shared")
    if source in SERVICES:
        return target in (source, "shared")
    return True


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_stay_on_their_side_of_the_map(package: str) -> None:
    crossings = [f"{dotted(path)} -> {name}" for path in modules(package)
                 for name in sorted(imports(path)) if not allowed(dotted(path), name)]
    assert crossings == []


@pytest.mark.parametrize("package", [p for p in PACKAGES if p != "devcluster"])
def test_modules_and_functions_stay_small(package: str) -> None:
    too_big = []
    for path in modules(package):
        source = path.read_text()
        lines = source.count("\n")
        if lines > MAX_MODULE_LINES:
            too_big.append(f"{dotted(path)}: {lines} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_big.append(f"{dotted(path)}:{node.name}: {length} lines")
    assert too_big == []


def has_logic(path: Path) -> bool:
    return any(isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
               for node in ast.parse(path.read_text()).body)


def imported_by_tests() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
    return found


def test_every_module_with_logic_has_a_test_module() -> None:
    tested = imported_by_tests()
    untested = [dotted(path) for package in PACKAGES if package != "devcluster"
                for path in modules(package)
                if path.name != "__main__.py" and has_logic(path)
                and dotted(path) not in tested]
    assert untested == []


def test_the_rules_themselves() -> None:
    assert not allowed("router.server", "gateway.broker")
    assert not allowed("shared.subjects", "gateway.fanout")
    assert not allowed("shared.protocol.offsets", "shared.subjects")
    assert not allowed("gateway.server", "devcluster.natsserver")
    assert not allowed("client.client", "gateway.session")
    assert allowed("gateway.fanout", "shared.room_log")
    assert allowed("shared.subjects", "shared.protocol.names")
    assert allowed("devcluster.__main__", "devcluster.natsserver")
