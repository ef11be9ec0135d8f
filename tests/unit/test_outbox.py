"""Per-connection output: what is queued in one loop pass leaves in one ``write``, and the
send budget counts the kernel's unsent bytes plus the queue."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from gateway.outbox import Flusher, Outbox


class FakeTransport:
    def __init__(self, buffered: int = 0) -> None:
        self.writes: list[bytes] = []
        self.buffered = buffered
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing


class FakeLoop:
    """Captures ``call_soon``; the test runs the end of the loop pass with :meth:`run_pass`."""

    def __init__(self) -> None:
        self.soon: list[Callable[[], Any]] = []

    def call_soon(self, callback: Callable[[], Any]) -> None:
        self.soon.append(callback)

    def run_pass(self) -> None:
        callbacks, self.soon = self.soon, []
        for callback in callbacks:
            callback()


class Rig:
    def __init__(self, budget: int = 1000, buffered: int = 0) -> None:
        self.loop = FakeLoop()
        self.flusher = Flusher(cast(asyncio.AbstractEventLoop, self.loop))
        self.overflows = 0
        self.budget = budget
        self.transports: list[FakeTransport] = []
        self.buffered = buffered

    def outbox(self) -> tuple[Outbox, FakeTransport]:
        transport = FakeTransport(self.buffered)
        self.transports.append(transport)
        box = Outbox(cast(asyncio.WriteTransport, transport), self.flusher, self.budget,
                     self._overflow)
        return box, transport

    def _overflow(self) -> None:
        self.overflows += 1


def test_frames_of_one_pass_leave_in_one_joined_write() -> None:
    rig = Rig()
    box, transport = rig.outbox()

    assert box.push(b"one") and box.push(b"two") and box.push(b"three")
    assert transport.writes == []  # nothing before the end of the pass
    assert len(rig.loop.soon) == 1

    rig.loop.run_pass()

    assert transport.writes == [b"onetwothree"]
    assert box.frames == [] and box.queued == 0


def test_single_frame_is_written_as_is() -> None:
    rig = Rig()
    box, transport = rig.outbox()
    box.push(b"only")
    rig.loop.run_pass()

    assert transport.writes == [b"only"]


def test_one_flush_per_pass_for_many_outboxes() -> None:
    rig = Rig()
    (box1, t1), (box2, t2) = rig.outbox(), rig.outbox()
    box1.push(b"a")
    box2.push(b"b")
    box1.push(b"c")

    assert len(rig.loop.soon) == 1
    rig.loop.run_pass()

    assert (t1.writes, t2.writes) == ([b"ac"], [b"b"])


def test_next_pass_is_a_new_write() -> None:
    rig = Rig()
    box, transport = rig.outbox()
    box.push(b"first")
    rig.loop.run_pass()
    box.push(b"second")
    rig.loop.run_pass()

    assert transport.writes == [b"first", b"second"]


def test_up_to_the_budget_is_accepted() -> None:
    rig = Rig(budget=10, buffered=4)
    box, _ = rig.outbox()

    assert box.push(b"123") and box.push(b"456")  # 4 unsent + 6 queued == 10
    assert rig.overflows == 0


def test_budget_overflow_calls_on_overflow_and_drops_the_queue() -> None:
    rig = Rig(budget=10, buffered=4)
    box, transport = rig.outbox()
    box.push(b"12345")

    assert box.push(b"67") is False  # 4 unsent + 5 queued + 2 > 10
    assert rig.overflows == 1
    assert box.frames == [] and box.queued == 0

    rig.loop.run_pass()
    assert transport.writes == []


def test_kernel_buffer_alone_can_bust_the_budget() -> None:
    rig = Rig(budget=10, buffered=10)
    box, transport = rig.outbox()

    assert box.push(b"x") is False
    assert rig.overflows == 1
    rig.loop.run_pass()
    assert transport.writes == []


def test_closing_transport_gets_nothing() -> None:
    rig = Rig()
    box, transport = rig.outbox()
    transport.closing = True

    assert box.push(b"late") is False
    rig.loop.run_pass()

    assert transport.writes == []
    assert rig.overflows == 0


def test_transport_closing_before_the_flush_gets_nothing() -> None:
    rig = Rig()
    box, transport = rig.outbox()
    box.push(b"queued")
    transport.closing = True

    rig.loop.run_pass()

    assert transport.writes == []
    assert box.frames == []


def test_explicit_flush_writes_now_and_the_pass_adds_nothing() -> None:
    rig = Rig()
    box, transport = rig.outbox()
    box.push(b"a")
    box.push(b"b")

    box.flush()  # e.g. before a close
    rig.loop.run_pass()

    assert transport.writes == [b"ab"]



def test_the_flusher_counts_passes_writes_and_frames() -> None:
    rig = Rig(budget=1 << 20)
    (one, first), (two, second) = rig.outbox(), rig.outbox()
    for frame in (b"a", b"b", b"c"):
        one.push(frame)
    two.push(b"d")
    rig.loop.run_pass()
    assert (rig.flusher.passes, rig.flusher.writes, rig.flusher.frames) == (1, 2, 4)
    assert first.writes == [b"abc"] and second.writes == [b"d"]


def test_the_backlog_is_read_once_per_pass_and_still_bounds_the_budget() -> None:
    rig = Rig(budget=100, buffered=90)
    outbox, transport = rig.outbox()
    assert outbox.push(b"12345")
    transport.buffered = 0  # the kernel took bytes meanwhile: the pass keeps its first reading
    assert outbox.push(b"12345")
    assert not outbox.push(b"1")
    assert rig.overflows == 1
