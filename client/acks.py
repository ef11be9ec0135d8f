"""Ack ids of one namespace and the calls waiting for them.

Ids count up per namespace from 0 like socket.io-client's and are never reused within the
client's life, so a late ack of an earlier attempt can only ever resolve the call it belongs
to (every attempt of a call registers the same result future under its own id).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


class AckRegistry:
    def __init__(self) -> None:
        self._next = 0
        self._pending: dict[int, asyncio.Future[list[Any]]] = {}

    def register(self, result: asyncio.Future[list[Any]]) -> int:
        ack_id = self._next
        self._next += 1
        self._pending[ack_id] = result
        return ack_id

    def resolve(self, ack_id: int | None, args: Any) -> bool:
        """Hand an ACK's arguments to its call; unknown or finished ids are ignored, as the
        reference client does."""
        if ack_id is None:
            return False
        result = self._pending.pop(ack_id, None)
        if result is None or result.done():
            return False
        result.set_result(list(args) if isinstance(args, list) else [args])
        return True

    def forget(self, ack_ids: Iterable[int]) -> None:
        for ack_id in ack_ids:
            self._pending.pop(ack_id, None)

    def __len__(self) -> int:
        return len(self._pending)
