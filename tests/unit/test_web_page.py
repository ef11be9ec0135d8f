"""Static checks of the demo page (``web/``): no browser needed.

The page is checked for real by driving it in a browser against a devcluster; these tests only
keep the cheap invariants from regressing: user data never goes through HTML parsing, the
module imports only event names ``web/events.js`` exports, every element the script looks up
exists, and the script parses.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.unit.test_events_sync import js_constants

WEB = Path(__file__).resolve().parents[2] / "web"
APP_JS = (WEB / "app.js").read_text()
INDEX_HTML = (WEB / "index.html").read_text()


def test_no_html_sinks_in_the_page_script() -> None:
    """Everything a server or another user sent is rendered with textContent."""
    sinks = re.findall(
        r"\b(innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval|Function)\s*[=(]",
        APP_JS,
    )
    assert not sinks


def test_imports_only_names_events_js_exports() -> None:
    match = re.search(r'import\s*\{([^}]*)\}\s*from\s*"\./events\.js";', APP_JS)
    assert match, "app.js imports its event names from ./events.js"
    imported = {name.strip() for name in match[1].split(",") if name.strip()}
    assert imported <= js_constants().keys()
    assert {"ROOM_PRESENCE", "PRESENCE_UPDATE", "TYPING_START", "TYPING_STOP"} <= imported


def test_every_element_the_script_uses_is_on_the_page() -> None:
    used = set(re.findall(r'\$\("([\w-]+)"\)', APP_JS))
    present = set(re.findall(r'\bid="([\w-]+)"', INDEX_HTML))
    assert {"members", "members-title", "members-note", "typing"} <= used
    assert used <= present, sorted(used - present)


def test_socket_io_client_runs_with_its_default_transports() -> None:
    assert "transports:" not in APP_JS


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("name", ["app.js", "events.js"])
def test_the_modules_parse(name: str) -> None:
    # Through stdin: `node --check file.js` does not reliably treat a .js file as a module.
    result = subprocess.run(
        ["node", "--input-type=module", "--check"],
        input=(WEB / name).read_text(), capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 0, result.stderr
