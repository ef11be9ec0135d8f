"""What a connection needs of its transport, WebSocket or HTTP long-polling alike."""

from __future__ import annotations

import asyncio
from typing import Protocol


class Channel(Protocol):
    """A transport the :class:`~gateway.connection.Connection` writes frames to (through its
    outbox), closes with a code, and pauses while its own backlog is full."""

    @property
    def transport(self) -> asyncio.WriteTransport | None: ...

    @property
    def close_code(self) -> int | None: ...

    def close(self, code: int, reason: str = "") -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def take_preface(self) -> bytes | None:
        """Bytes to write before the first frame, handed over once (a WebSocket's 101)."""
