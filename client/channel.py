"""The client's state for one namespace, kept across reconnects.

A namespace keeps its recovery state (pid, last offset), its rooms, its sequence tracker and
its ack ids from one transport to the next; only ``connected``/``ready`` follow the link.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from client.acks import AckRegistry
from client.recovery import RecoveryState
from client.sequence import SequenceTracker


@dataclass(eq=False)
class Channel:
    nsp: str
    tracker: SequenceTracker
    recovery: RecoveryState = field(default_factory=RecoveryState)
    sid: str | None = None
    recovered: bool = False  # the last CONNECT got the session back
    rooms: dict[str, None] = field(default_factory=dict)  # joined by the app, in join order
    acks: AckRegistry = field(default_factory=AckRegistry)
    reply: asyncio.Future[Any] | None = None  # the CONNECT reply the current link waits for
    connected: asyncio.Event = field(default_factory=asyncio.Event)  # internal requests may go
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # rooms back: app requests may go

    def unlink(self) -> None:
        """The link is gone: requests wait for the next one."""
        self.connected.clear()
        self.ready.clear()
        if self.reply is not None and not self.reply.done():
            self.reply.cancel()
        self.reply = None

    def reset_session(self) -> None:
        """The session ended for good: the next connect starts a new one, with no rooms."""
        self.recovery = RecoveryState()
        self.sid = None
        self.recovered = False
        self.rooms.clear()
