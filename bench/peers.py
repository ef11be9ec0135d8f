"""The peer target of the benchmarks: Socket.IO 4.8 + ``@socket.io/redis-adapter`` on two Node
processes and one ``redis-server`` (``bench/sio/server.js``), started the way the other targets
are (children that die with the runner, stopped by PID in ``finally``).

``redis-server`` comes from Debian's package: when it is not on ``PATH`` and the runner is root,
:func:`redis_server_binary` installs it with ``apt-get``; otherwise the target is skipped with
:class:`Unavailable`. It listens on a free port of 127.0.0.1 with no persistence.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from benchproc import Child, free_port
from fanout import LineReader, Target

BENCH = Path(__file__).resolve().parent
SIO_DIR = BENCH / "sio"
SIO_SERVER = SIO_DIR / "server.js"


class Unavailable(RuntimeError):
    """The target cannot run on this machine (the message says what is missing)."""


def redis_server_binary() -> str:
    """``redis-server``'s path; installed from Debian's package when missing and root."""
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise Unavailable("redis-server is not installed (apt-get install redis-server, as root)"
                          ": the Socket.IO target is skipped")
    print("installing redis-server with apt-get (once) ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "redis-server"]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:  # a stale package list: update once, then try again
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=300)
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=300)
    found = shutil.which("redis-server")
    if not found:
        raise Unavailable(f"apt-get install redis-server failed: {done.stderr[-500:]}")
    return found


def _redis_pong(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")
    return False


def start_redis(stack: contextlib.ExitStack, logs: Path) -> tuple[Child, int]:
    """redis-server on a free port of 127.0.0.1, no RDB or AOF, stopped by ``stack``."""
    binary = redis_server_binary()
    port = free_port()
    workdir = logs / "redis"
    workdir.mkdir(exist_ok=True)
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--daemonize", "no", "--dir", str(workdir), "--logfile", ""]
    child = Child("redis", argv, logs / "redis.log")
    stack.callback(child.stop)
    deadline = time.monotonic() + 15
    while not _redis_pong(port):
        if not child.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not answer PING:\n{child.log_tail()}")
        time.sleep(0.05)
    return child, port


def start_sio(stack: contextlib.ExitStack, logs: Path, secret: str, processes: int,
              lifetime_s: float) -> Target:
    """redis-server and ``processes`` Socket.IO servers sharing it through the redis adapter.

    The target's pids are ``sio-<i>`` and ``redis``; its URLs one per Node process."""
    node = shutil.which("node")
    if node is None:
        raise Unavailable("node (20+) is not on PATH: the Socket.IO target is skipped")
    if not (SIO_DIR / "node_modules" / "socket.io").is_dir():
        raise Unavailable("run `npm ci --prefix bench/sio` first: the Socket.IO target is skipped")
    redis, redis_port = start_redis(stack, logs)
    target = Target("sio", [], {"redis": redis.pid}, [redis])
    secret_file = logs / "sio-secret.txt"
    secret_file.write_text(secret)
    for i in range(processes):
        argv = [node, str(SIO_SERVER), "--port", "0", "--redis",
                f"redis://127.0.0.1:{redis_port}", "--secret-file", str(secret_file),
                "--max-seconds", str(int(lifetime_s))]
        child = Child(f"sio-{i}", argv, logs / f"sio-{i}.log", cwd=SIO_DIR, stdout_pipe=True)
        stack.callback(child.stop)
        line = LineReader(child).line(20).decode()
        if not line.startswith("READY "):
            raise RuntimeError(f"sio-{i} said {line!r}")
        port = int(json.loads(line[len("READY "):])["port"])
        target.children.append(child)
        target.pids[child.name] = child.pid
        target.urls.append(f"ws://127.0.0.1:{port}")
    return target


def versions() -> dict[str, str]:
    """The Socket.IO stack's versions (from its node_modules) and redis-server's."""
    found: dict[str, str] = {}
    for package in ("socket.io", "engine.io", "ws", "@socket.io/redis-adapter", "redis"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            meta = json.loads((SIO_DIR / "node_modules" / package / "package.json").read_text())
            found[f"sio:{package}"] = meta["version"]
    binary = shutil.which("redis-server")
    if binary:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            found["redis-server"] = subprocess.run(
                [binary, "--version"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
    return found
