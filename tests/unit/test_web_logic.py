"""The demo page's logic that needs no DOM, in node's own test runner.

What the status line says, how a sid names its gateway, where a message goes by ``seq`` and
when a gap is filled, room names and what a reload remembers: plain functions and classes in
``web/``, tested by ``tests/js/web_logic.test.mjs`` (the page itself runs them in a browser).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

TEST_FILE = Path(__file__).resolve().parents[1] / "js" / "web_logic.test.mjs"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_page_logic_passes_its_node_tests() -> None:
    # web/ has no "type": "module"; node 20 needs the flag to load its ES modules.
    result = subprocess.run(
        ["node", "--experimental-detect-module", "--test", str(TEST_FILE)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout
