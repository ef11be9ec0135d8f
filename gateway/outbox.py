"""Per-connection output: frames queued during one event-loop pass leave in one ``write``.

Writing each delivery with its own syscall costs more kernel time than all the Python work
of a fan-out; joining what one socket is owed within a loop pass divides that by the batch
size and adds no latency (the flush runs at the end of the same pass). Writes go straight to
the transport (the WebSocket layer keeps no queue of its own), so the send budget is enforced here:
bytes the kernel has not taken plus bytes queued must stay under the budget, or the socket is
a slow consumer and is closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Outbox:
    __slots__ = ("_flusher", "backlog", "budget", "frames", "on_overflow", "queued", "transport")

    def __init__(
        self,
        transport: asyncio.WriteTransport,
        flusher: Flusher,
        budget: int,
        on_overflow: Callable[[], None],
        preface: bytes | None = None,
    ) -> None:
        """``preface``: bytes that must precede every frame (an upgrade's 101), queued first
        so that they leave in the same write as the frames of this pass (the open packet)."""
        self.transport = transport
        self.budget = budget
        self.on_overflow = on_overflow
        self.frames: list[bytes] = []
        self.queued = 0
        self.backlog = 0
        self._flusher = flusher
        if preface is not None:
            self.push(preface)

    def push(self, frame: bytes) -> bool:
        """Queue ``frame``; ``False`` (and the overflow callback) if it would bust the budget.

        The transport is asked for its unsent bytes once per loop pass, at the first frame:
        that backlog only shrinks until this outbox writes again, so the check stays
        conservative, and a closing transport is skipped for the whole pass.
        """
        frames = self.frames
        if not frames:
            transport = self.transport
            if transport.is_closing():
                return False
            self.backlog = transport.get_write_buffer_size()
        queued = self.queued + len(frame)
        if self.backlog + queued > self.budget:
            frames.clear()
            self.queued = 0
            self.on_overflow()
            return False
        if not frames:
            self._flusher.mark(self)
        frames.append(frame)
        self.queued = queued
        return True

    def flush(self) -> int:
        """Write what is queued and say how many frames went; the list is reused, so a
        100K-member fan-out does not leave 100K fresh lists for the garbage collector."""
        frames = self.frames
        count = len(frames)
        if not count:
            return 0
        data = frames[0] if count == 1 else b"".join(frames)
        frames.clear()
        self.queued = 0
        if self.transport.is_closing():
            return 0
        self.transport.write(data)
        return count


class Flusher:
    """Flushes every outbox that got frames, once per loop pass or once per ``delay``.

    With no delay the flush runs at the end of the loop pass that queued the frames. A log
    republishes messages one at a time, so at moderate rates a pass holds one message and
    every member gets its own syscall per message; a delay of a millisecond or two gathers a
    few messages per write at that cost in latency (centrifuge's ``write_delay`` idea).
    """

    __slots__ = ("_delay", "_dirty", "_loop", "_scheduled", "frames", "passes", "writes")

    def __init__(self, loop: asyncio.AbstractEventLoop, delay: float = 0.0) -> None:
        self._loop = loop
        self._delay = delay
        self._dirty: list[Outbox] = []
        self._scheduled = False
        self.passes = 0
        """Flushes run: loop passes (or delays) that had something to write."""
        self.writes = 0
        self.frames = 0
        """Frames written; ``frames / writes`` is how well one pass coalesces per socket."""

    def mark(self, outbox: Outbox) -> None:
        self._dirty.append(outbox)
        if not self._scheduled:
            self._scheduled = True
            if self._delay:
                self._loop.call_later(self._delay, self.flush)
            else:
                self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        frames = writes = 0
        for outbox in dirty:
            written = outbox.flush()
            if written:
                frames += written
                writes += 1
        self.passes += 1
        self.writes += writes
        self.frames += frames
