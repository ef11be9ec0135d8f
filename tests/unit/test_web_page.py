"""Static checks of the demo page (``web/``): no browser needed.

The page is checked for real by driving it in a browser against a devcluster
(tests/integration/test_browser.py); these tests only keep the cheap invariants from
regressing, over every module of the page: user data never goes through HTML parsing, the
modules import only event names ``web/events.js`` exports, every element the scripts look up
exists, every module is one the demo server serves, and every module parses.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from devcluster.demo import _PAGES
from tests.unit.test_events_sync import js_constants

WEB = Path(__file__).resolve().parents[2] / "web"
MODULES = sorted(path.name for path in WEB.glob("*.js"))
SOURCES = {name: (WEB / name).read_text() for name in MODULES}
APP_JS = SOURCES["app.js"]
INDEX_HTML = (WEB / "index.html").read_text()
EVENTS_IMPORT = re.compile(r'import\s*\{([^}]*)\}\s*from\s*"\./events\.js";')


@pytest.mark.parametrize("name", MODULES)
def test_no_html_sinks_in_the_page_scripts(name: str) -> None:
    """Everything a server or another user sent is rendered with textContent."""
    sinks = re.findall(
        r"\b(innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval|Function)\s*[=(]",
        SOURCES[name],
    )
    assert not sinks


def test_imports_only_names_events_js_exports() -> None:
    assert EVENTS_IMPORT.search(APP_JS), "app.js imports its event names from ./events.js"
    imported = {
        name.strip()
        for source in SOURCES.values()
        for match in EVENTS_IMPORT.finditer(source)
        for name in match[1].split(",") if name.strip()
    }
    assert imported <= js_constants().keys()
    assert {"ROOM_PRESENCE", "PRESENCE_UPDATE", "TYPING_START", "TYPING_STOP",
            "ROOM_HISTORY"} <= imported


def test_every_element_the_script_uses_is_on_the_page() -> None:
    used = set(re.findall(r'\$\("([\w-]+)"\)', APP_JS))
    present = set(re.findall(r'\bid="([\w-]+)"', INDEX_HTML))
    assert {"members", "members-title", "members-note", "typing", "status", "rooms",
            "kill"} <= used
    assert used <= present, sorted(used - present)


def test_every_module_is_served() -> None:
    """A module the server does not list would 404 and take the whole page down."""
    imported = {f"/{name}" for source in SOURCES.values()
                for name in re.findall(r'from\s*"\./([\w-]+\.js)";', source)}
    served = {path for path, (filename, _) in _PAGES.items()}
    assert {f"/{name}" for name in MODULES} <= served
    assert imported <= served


def test_socket_io_client_runs_with_its_default_transports() -> None:
    assert all("transports" not in source for source in SOURCES.values())
    assert re.search(r"\bio\(url \+ NAMESPACE, \{\s*//[^\n]*\n\s*auth:", APP_JS)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("name", MODULES)
def test_the_modules_parse(name: str) -> None:
    # Through stdin: `node --check file.js` does not reliably treat a .js file as a module.
    result = subprocess.run(
        ["node", "--input-type=module", "--check"],
        input=SOURCES[name], capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 0, result.stderr
