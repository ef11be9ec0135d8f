"""``python -m devcluster --prometheus``: a local Prometheus scraping every devcluster service.

The same picture as the compose stack without Docker: one ``prometheus`` process (Debian's
package, or any binary on ``PATH``) with the jobs the alert rules and the Grafana dashboard
select on — ``gateway``, ``router``, ``presence`` — as static targets, and the alert rules
from ``deploy/prometheus/`` when devcluster runs from a checkout. It listens on 127.0.0.1,
on base+90 by default (8090), keeps its data in a temporary directory removed on exit, and is
stopped before the services so it never records them as down during a normal stop.

It is optional by design: nothing else in devcluster needs it, and a machine without the
binary gets a one-line explanation instead of a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from devcluster import cluster
from devcluster.cluster import Cluster, StartupError
from devcluster.layout import HOST, Layout, LayoutError, Options
from devcluster.parent_death import die_with_parent

log = logging.getLogger("devcluster")

PROMETHEUS_OFFSET = 90
"""Prometheus listens on base+90 unless ``--prometheus-port`` says otherwise."""
RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "switchboard-rules.yml"
"""The alert rules the compose stack loads; present when devcluster runs from a checkout."""
_POLL_S = 0.1
_STOP_GRACE_S = 10.0


class PrometheusError(StartupError):
    """No prometheus binary, a taken port, or a Prometheus that did not become ready."""


@dataclass(frozen=True, slots=True)
class PrometheusOptions:
    """``--prometheus-port`` (``None``: base+90) and ``--prometheus-interval`` in seconds."""

    port: int | None = None
    interval: float = 5.0
    binary: str | None = None


def find_prometheus() -> str:
    """The ``prometheus`` binary on ``PATH``, or an error that says how to get one."""
    found = shutil.which("prometheus")
    if found is None:
        raise PrometheusError(
            "--prometheus needs a `prometheus` binary on PATH (Debian/Ubuntu: "
            "`apt-get install prometheus`; or a release binary from the Prometheus project)")
    return found


def duration(seconds: float) -> str:
    """Seconds as a Prometheus duration; Prometheus rejects fractions like ``0.5s``."""
    return f"{round(seconds * 1000)}ms"


def scrape_config(layout: Layout, interval: float, port: int, rules: Path | None) -> str:
    """The configuration file, as JSON (which YAML, and so Prometheus, reads as it is).

    Job names match deploy/prometheus/prometheus.yml, so the same rules and dashboard work.
    """
    def targets(*ports: int) -> list[dict[str, list[str]]]:
        return [{"targets": [f"{HOST}:{p}" for p in ports]}]

    config = {
        "global": {"scrape_interval": duration(interval), "scrape_timeout": duration(interval),
                   "evaluation_interval": duration(interval),
                   "external_labels": {"stack": "devcluster"}},
        "rule_files": [str(rules)] if rules is not None else [],
        "scrape_configs": [
            {"job_name": "gateway",
             "static_configs": targets(*(gateway.port for gateway in layout.gateways))},
            {"job_name": "router", "static_configs": targets(layout.router.port)},
            {"job_name": "presence", "static_configs": targets(layout.presence.port)},
            {"job_name": "prometheus", "static_configs": targets(port)},
        ],
    }
    return json.dumps(config, indent=2) + "\n"


class LocalPrometheus:
    """One supervised ``prometheus`` process owning a temporary directory."""

    def __init__(self, options: PrometheusOptions, base_port: int,
                 ready_timeout: float) -> None:
        if options.interval <= 0:
            raise LayoutError(f"--prometheus-interval must be positive, got {options.interval}")
        self._options = options
        self.port = options.port if options.port is not None else base_port + PROMETHEUS_OFFSET
        self._ready_timeout = ready_timeout
        self._proc: asyncio.subprocess.Process | None = None
        self._relay: asyncio.Task[None] | None = None
        self._dir: Path | None = None

    @property
    def url(self) -> str:
        """Where its web UI and HTTP API answer."""
        return f"http://{HOST}:{self.port}"

    async def start(self, layout: Layout) -> None:
        """Write the configuration, spawn Prometheus and wait until ``/-/ready`` says 200."""
        if self.port in layout.fixed_ports or not 1 <= self.port <= 65535:
            raise LayoutError(f"Prometheus port {self.port} collides with a devcluster port or "
                              "is out of range; pick another with --prometheus-port")
        _check_free(self.port)
        binary = self._options.binary or find_prometheus()
        self._dir = Path(tempfile.mkdtemp(prefix="sb-prometheus-"))
        rules = RULES if RULES.is_file() else None
        if rules is None:
            log.warning("alert rules not found at %s (not a checkout?); Prometheus runs without "
                        "them", RULES)
        config = self._dir / "prometheus.yml"
        config.write_text(scrape_config(layout, self._options.interval, self.port, rules))
        self._proc = await asyncio.create_subprocess_exec(
            binary, f"--config.file={config}", f"--storage.tsdb.path={self._dir / 'data'}",
            f"--web.listen-address={HOST}:{self.port}", "--log.level=warn",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # like every child: devcluster alone decides when it stops
            preexec_fn=die_with_parent(),
        )
        assert self._proc.stdout is not None
        self._relay = asyncio.create_task(_relay(self._proc.stdout))
        log.info("started prometheus pid=%d url=%s", self._proc.pid, self.url)
        await self._wait_ready()
        log.info("prometheus ready at %s (scraping every %gs; rules: %s)", self.url,
                 self._options.interval, rules or "none")

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period; the temporary directory goes too."""
        proc = self._proc
        if proc is not None:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), _STOP_GRACE_S)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
            if self._relay is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._relay, 2.0)
            log.info("stopped prometheus pid=%d code=%s", proc.pid, proc.returncode)
            self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    async def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = asyncio.get_running_loop().time() + self._ready_timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as session:
            while True:
                if self._proc.returncode is not None:
                    raise PrometheusError(f"prometheus exited with code {self._proc.returncode} "
                                          "before it was ready (its output is above)")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(f"{self.url}/-/ready") as answer:
                        if answer.status == 200:
                            return
                if asyncio.get_running_loop().time() > deadline:
                    raise PrometheusError(f"prometheus not ready after {self._ready_timeout:g}s "
                                          f"(GET {self.url}/-/ready)")
                await asyncio.sleep(_POLL_S)


class PrometheusCluster(Cluster):
    """The cluster plus :class:`LocalPrometheus`, started once every service has its port and
    stopped first."""

    def __init__(self, options: Options, environ: Mapping[str, str],
                 prometheus: PrometheusOptions) -> None:
        super().__init__(options, environ)
        self.prometheus = LocalPrometheus(prometheus, options.base_port, options.ready_timeout)

    async def _start_children(self, layout: Layout, env: Mapping[str, str]) -> None:
        await super()._start_children(layout, env)
        await self.prometheus.start(layout)

    async def shutdown(self) -> None:
        """Prometheus first, so a normal stop records no service as down."""
        await self.prometheus.stop()
        await super().shutdown()


async def run(options: Options, prometheus: PrometheusOptions,
              environ: Mapping[str, str]) -> int:
    """:func:`devcluster.cluster.run` with a local Prometheus; the same exit codes."""
    return await cluster.run(options, environ, PrometheusCluster(options, environ, prometheus))


def _check_free(port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            raise PrometheusError(f"Prometheus port {port} on {HOST} is in use "
                                  f"({exc.strerror}); pick another with --prometheus-port"
                                  ) from None


async def _relay(stream: asyncio.StreamReader) -> None:
    """Prometheus's own warnings go to devcluster's stderr, prefixed like every child's."""
    async for raw in stream:
        sys.stderr.write(f"[prometheus] {raw.decode(errors='replace').rstrip()}\n")
        sys.stderr.flush()
