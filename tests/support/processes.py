"""Switchboard services as real OS processes on free ports, stopped by PID in every case."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devcluster.natsserver import free_ports
from tests.support.timing import UNIT

ROOT = Path(__file__).resolve().parents[2]
_UNVERIFIED = ssl._create_unverified_context()  # readiness only; the tests verify TLS


@dataclass
class Service:
    module: str
    env: dict[str, str]
    port: int
    scheme: str = "http"
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _log: object = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, log_dir: Path) -> Service:
        """Start (or start again after a kill, appending to the same log)."""
        if self._log is not None:
            self._log.close()  # type: ignore[attr-defined]
        self.log_path = log_dir / f"{self.module}-{self.port}.log"
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log = log
        env = {**os.environ, **self.env, "SB_PORT": str(self.port)}
        self.proc = subprocess.Popen([sys.executable, "-m", self.module], cwd=ROOT, env=env,
                                     stdout=log, stderr=subprocess.STDOUT)
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20 * UNIT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.module} exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1,
                                            context=_UNVERIFIED) as answer:
                    if answer.status == 200:
                        return
            except urllib.error.HTTPError as not_ready:
                not_ready.close()
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.module} never became ready: {self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        log = self._log
        if log is not None:
            log.close()  # type: ignore[attr-defined]
            self._log = None


def gateway(nats_url: str, secret: str, scheme: str = "http", **env: str) -> Service:
    (port,) = free_ports(1)
    base = {
        "SB_NATS_URL": nats_url,
        "SB_JWT_SECRET": secret,
        "SB_INSTANCE_ID": f"gw-test-{port}",
        "SB_LOG_LEVEL": "INFO",
        "SB_DRAIN_WINDOW_S": "0.5",  # tests stop gateways with clients still connected
    }
    return Service("gateway", {**base, **env}, port, scheme)


def presence(nats_url: str, **env: str) -> Service:
    (port,) = free_ports(1)
    base = {
        "SB_NATS_URL": nats_url,
        "SB_INSTANCE_ID": f"presence-test-{port}",
        "SB_LOG_LEVEL": "INFO",
    }
    return Service("presence", {**base, **env}, port)
