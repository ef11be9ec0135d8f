"""A devcluster and the demo page in Debian's Chromium, for the browser tests.

The cluster is ``python -m devcluster`` as a person runs it (stderr to a file, whose
``started NAME pid=PID`` lines say which processes to kill), with a short heartbeat so a page
taken offline notices within seconds, and a presence grace longer than any outage the tests
make, so a recovery is expected to announce nothing. :class:`Chat` reads the page through
its DOM only: the status line's ``data-phase``/``data-gateway``/``data-recovered``, one
``ul.log[data-room]`` per room whose ``li.message`` items carry ``data-seq``.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, BrowserContext, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.integration.test_devcluster import STARTED, alive, free_base_port
from tests.support.timing import UNIT

CHROMIUM = Path("/usr/bin/chromium")
HEARTBEAT_S = 2.5
"""SB_PING_INTERVAL_MS + SB_PING_TIMEOUT_MS of the cluster's gateways."""
ENV = {
    "SB_ENV": "development",
    "SB_JWT_SECRET": "browser-test-secret-of-at-least-32-bytes!",
    "SB_API_KEY": "browser-test-api-key",
    "SB_PING_INTERVAL_MS": "1500",
    "SB_PING_TIMEOUT_MS": "1000",
    "SB_PRESENCE_GRACE_S": "30",
}
WAIT_MS = 20_000 * UNIT

# Every status the page shows, in order (consecutive repeats once), across reloads.
_WATCH_STATUS = """
addEventListener("DOMContentLoaded", () => {
  const status = document.getElementById("status");
  window.statuses = [];
  const note = () => {
    const seen = `${status.dataset.phase}|${status.textContent}`;
    if (window.statuses.at(-1) !== seen) window.statuses.push(seen);
  };
  new MutationObserver(note).observe(status, { attributes: true, childList: true,
    characterData: true, subtree: true });
  note();
});
"""
_LOG = 'ul.log[data-room="${CSS.escape(room)}"]'
_MESSAGES = "(room) => [...document.querySelectorAll(`" + _LOG + """ li.message`)]
  .map((li) => [Number(li.dataset.seq), li.querySelector(".from").textContent,
                li.querySelector(".text").textContent])"""
_NOTICES = "(room) => [...document.querySelectorAll(`" + _LOG + """ li.system`)]
  .map((li) => li.textContent)"""


@dataclass
class Cluster:
    proc: subprocess.Popen[bytes]
    stderr_path: Path
    ready: dict[str, Any]

    @property
    def demo(self) -> str:
        return str(self.ready["demo"])

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def pid_of(self, name: str) -> int:
        """The latest process started under ``name`` (devcluster restarts under the name)."""
        return [int(pid) for started, pid in STARTED.findall(self.stderr()) if started == name][-1]

    def holder(self, user: str) -> str:
        """The gateway holding ``user``'s one connection, per the router's registry (an upgrade
        through the balancer may have moved it off the gateway its sid names)."""
        request = urllib.request.Request(
            f"{self.ready['router']}/api/v1/users/{urllib.parse.quote(user, safe='')}/connections",
            headers={"Authorization": f"Bearer {ENV['SB_API_KEY']}"})
        with urllib.request.urlopen(request, timeout=5 * UNIT) as answer:
            connections = json.load(answer)["connections"]
        assert len(connections) == 1, connections
        return str(connections[0]["gateway"])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL whatever devcluster started and left running."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30 * UNIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for _, pid in STARTED.findall(self.stderr()):
            if alive(int(pid)):
                os.kill(int(pid), signal.SIGKILL)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_cluster(directory: Path) -> Cluster:
    stderr_path = directory / "devcluster.stderr"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devcluster", "--gateways", "2",
             "--base-port", str(free_base_port())],
            cwd=directory, env={**os.environ, **ENV}, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=stderr,
        )
    cluster = Cluster(proc, stderr_path, {})
    try:
        cluster.ready = _read_ready(cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _read_ready(cluster: Cluster) -> dict[str, Any]:
    stdout = cluster.proc.stdout
    assert stdout is not None
    readable, _, _ = select.select([stdout], [], [], 60 * UNIT)
    line = stdout.readline().decode() if readable else ""
    if not line.startswith("READY "):
        raise RuntimeError(f"no READY line (stdout {line!r}); stderr:\n{cluster.stderr()}")
    ready: dict[str, Any] = json.loads(line.removeprefix("READY "))
    return ready


class Chat:
    """One person's demo page, in a browser context of its own (its own storage, network)."""

    def __init__(self, context: BrowserContext, page: Page) -> None:
        self.context = context
        self.page = page
        self.dialogs: list[str] = []
        self.engine_urls: list[str] = []
        """Every Engine.IO request and WebSocket the page opened, in order."""
        page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))
        page.on("request", lambda request: self._note(request.url))
        page.on("websocket", lambda websocket: self._note(websocket.url))

    def _note(self, url: str) -> None:
        if "/socket.io/" in url:
            self.engine_urls.append(url)

    @classmethod
    def open(cls, browser: Browser, demo: str) -> Chat:
        # The page's own CSP would also stop an injected handler; the XSS test must show that
        # rendering alone keeps payloads inert, and Playwright's waits evaluate strings.
        context = browser.new_context(bypass_csp=True)
        context.add_init_script(_WATCH_STATUS)
        chat = cls(context, context.new_page())
        chat.page.goto(demo)
        chat.wait_loaded()
        return chat

    def reload(self) -> None:
        self.page.reload()
        self.wait_loaded()

    def wait_loaded(self) -> None:
        """The page has its config (the gateway options)."""
        self.page.wait_for_function("document.querySelectorAll('#gateway option').length > 0",
                                    timeout=WAIT_MS)

    def connect(self, name: str, room: str, gateway: int | None = None) -> None:
        """Through the balancer (the default), or straight to gateway 1 or 2."""
        if gateway is not None:  # the options: the balancer, then gateway 1, 2
            self.page.click("#advanced summary")
            self.page.select_option("#gateway", index=gateway)
        self.page.fill("#room", room)
        self.page.fill("#name", name)
        self.page.click("#connect")
        self.wait_connected()
        self.page.wait_for_selector(f'#rooms li[data-room="{room}"]', timeout=WAIT_MS)

    def wait_connected(self, recovered: bool | None = None) -> None:
        """Connected; ``recovered=True`` waits for a recovered session (a reconnection)."""
        if recovered:
            try:
                self.page.wait_for_selector(
                    '#status[data-phase="connected"][data-recovered="true"]',
                    state="attached", timeout=WAIT_MS)
            except PlaywrightTimeout:
                raise AssertionError(f"not recovered; statuses: {self.statuses()}") from None
        self.wait_phase("connected")
        if recovered is not None:
            assert self.status("recovered") == str(recovered).lower(), self.statuses()

    def settle(self) -> None:
        """Let the upgrade to WebSocket finish (or fail: the page then stays on polling)."""
        with contextlib.suppress(PlaywrightTimeout):
            self.page.wait_for_selector("#status:has-text('over websocket')",
                                        timeout=5_000 * UNIT)

    def wait_phase(self, phase: str) -> None:
        self.page.wait_for_function(
            "(phase) => document.getElementById('status').dataset.phase === phase",
            arg=phase, timeout=WAIT_MS)

    def stale(self) -> bool:
        """Whether the members panel is greyed (the page is not connected)."""
        return "stale" in (self.page.get_attribute("#people", "class") or "").split()

    def status(self, field: str = "phase") -> str:
        return str(self.page.get_attribute("#status", f"data-{field}") or "")

    def status_text(self) -> str:
        return str(self.page.text_content("#status"))

    def statuses(self) -> list[str]:
        return list(self.page.evaluate("window.statuses"))

    def phases(self) -> list[str]:
        """The phases the status line went through, each change once."""
        phases: list[str] = []
        for status in self.statuses():
            phase = status.split("|", 1)[0]
            if not phases or phases[-1] != phase:
                phases.append(phase)
        return phases

    def send(self, text: str) -> None:
        self.page.fill("#text", text)
        self.page.click("#send-form button")
        self.page.wait_for_function("document.getElementById('text').value === ''",
                                    timeout=WAIT_MS)

    def messages(self, room: str) -> list[tuple[int, str, str]]:
        return [tuple(m) for m in self.page.evaluate(_MESSAGES, room)]  # type: ignore[misc]

    def texts(self, room: str) -> list[str]:
        return [text for _, _, text in self.messages(room)]

    def wait_texts(self, room: str, count: int) -> list[str]:
        self.page.wait_for_function(
            f"(room) => ({_MESSAGES})(room).length >= {count}", arg=room, timeout=WAIT_MS)
        return self.texts(room)

    def notices(self, room: str) -> list[str]:
        return list(self.page.evaluate(_NOTICES, room))

    def log_counter(self, room: str, name: str) -> str:
        return str(self.page.get_attribute(f'ul.log[data-room="{room}"]', f"data-{name}"))

    def close(self) -> None:
        self.context.close()
