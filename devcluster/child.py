"""One supervised service process: spawned, its output relayed, polled until ready, stopped.

A child's stdout and stderr are merged and relayed line by line to devcluster's stderr with
a ``[name]`` prefix, because devcluster's stdout carries nothing but the READY line. The last
lines are kept so a child that dies or never gets ready is reported with its own words.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Mapping

import aiohttp

from devcluster.layout import ChildSpec
from devcluster.parent_death import die_with_parent

log = logging.getLogger("devcluster")

_TAIL_LINES = 30
_POLL_S = 0.1
_CHUNK = 65_536


class ChildFailed(RuntimeError):
    """A child exited or was not ready in time; the message names it and shows its output."""


class Child:
    """``python -m <module>`` for one :class:`ChildSpec`, in its own process group.

    Its own group keeps a terminal's Ctrl-C away from it: devcluster alone decides the order
    in which things stop.
    """

    def __init__(self, spec: ChildSpec, env: Mapping[str, str]) -> None:
        self.spec = spec
        self._env = dict(env)
        self._proc: asyncio.subprocess.Process | None = None
        self._relay: asyncio.Task[None] | None = None
        self._tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self.started_at = 0.0
        """``time.monotonic()`` of the last start."""

    @property
    def pid(self) -> int:
        """The process id (after :meth:`start`)."""
        return self._process().pid

    @property
    def returncode(self) -> int | None:
        """Exit status, or ``None`` while running or before a start."""
        return None if self._proc is None else self._proc.returncode

    def tail(self) -> str:
        """The child's last output lines, indented for an error message."""
        return "\n".join(f"    {line}" for line in self._tail) or "    (no output)"

    async def start(self) -> None:
        """Spawn the process and begin relaying its output."""
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", self.spec.module,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=self._env,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        self.started_at = time.monotonic()
        assert self._proc.stdout is not None
        self._relay = asyncio.create_task(self._relay_output(self._proc.stdout))
        log.info("started %s pid=%d url=%s", self.spec.name, self._proc.pid, self.spec.url)

    async def wait_ready(self, session: aiohttp.ClientSession, stop: asyncio.Event,
                         within: float) -> bool:
        """Poll ``/readyz`` until 200; ``False`` if ``stop`` was set first.

        Raises :class:`ChildFailed` if the child exits or ``within`` seconds pass.
        """
        deadline = asyncio.get_running_loop().time() + within
        while not stop.is_set():
            if self.returncode is not None:
                await self._finish_relay()  # its last words explain why
                raise ChildFailed(self._describe(f"exited with code {self.returncode} "
                                                 "before it was ready"))
            if await self._is_ready(session):
                log.info("%s ready at %s", self.spec.name, self.spec.url)
                return True
            if asyncio.get_running_loop().time() > deadline:
                raise ChildFailed(self._describe(f"not ready after {within:g}s "
                                                 f"(GET {self.spec.url}/readyz)"))
            await asyncio.sleep(_POLL_S)
        return False

    async def wait(self) -> int:
        """Wait for the process to exit; its output relay is finished first."""
        code = await self._process().wait()
        await self._finish_relay()
        return code

    def describe_exit(self) -> str:
        """An unexpected exit, with the child's last output, for the log."""
        return self._describe(f"exited unexpectedly with code {self.returncode}")

    def kill(self) -> None:
        """SIGKILL the whole process group at once (a second Ctrl-C); :meth:`stop` reaps it."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

    async def stop(self, grace: float) -> None:
        """SIGTERM, then SIGKILL to its whole process group after ``grace`` seconds."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace)
            except TimeoutError:
                log.warning("%s pid=%d ignored SIGTERM for %gs; killing it",
                            self.spec.name, proc.pid, grace)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        await self._finish_relay()
        log.info("stopped %s pid=%d code=%s", self.spec.name, proc.pid, proc.returncode)

    # -- internals -------------------------------------------------------------------------

    def _process(self) -> asyncio.subprocess.Process:
        if self._proc is None:
            raise RuntimeError(f"{self.spec.name} has not been started")
        return self._proc

    def _describe(self, what: str) -> str:
        pid = self._proc.pid if self._proc else "?"
        return f"{self.spec.name} (pid {pid}) {what}; its last output:\n{self.tail()}"

    async def _is_ready(self, session: aiohttp.ClientSession) -> bool:
        try:
            async with session.get(f"{self.spec.url}/readyz") as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def _relay_output(self, stream: asyncio.StreamReader) -> None:
        pending = b""
        while chunk := await stream.read(_CHUNK):
            *lines, pending = (pending + chunk).split(b"\n")
            if len(pending) > _CHUNK:  # an endless line is relayed in pieces, not hoarded
                lines.append(pending)
                pending = b""
            for line in lines:
                self._emit(line)
        if pending:
            self._emit(pending)

    def _emit(self, raw: bytes) -> None:
        line = raw.decode(errors="replace").rstrip("\r")
        self._tail.append(line)
        sys.stderr.write(f"[{self.spec.name}] {line}\n")
        sys.stderr.flush()

    async def _finish_relay(self) -> None:
        """Let the relay drain; a grandchild holding the pipe open must not hang shutdown."""
        if self._relay is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._relay), 2.0)
        except TimeoutError:
            self._relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay
