"""Ack ids: per namespace from 0, never reused, and every attempt of a call resolving the
same result, so an ack of an earlier attempt is as good as the last one's."""

from __future__ import annotations

import asyncio
from typing import Any

from client.acks import AckRegistry


async def test_ids_count_up_and_any_attempt_resolves_the_call() -> None:
    acks = AckRegistry()
    result: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()

    first, second = acks.register(result), acks.register(result)

    assert (first, second) == (0, 1)
    assert acks.resolve(first, [{"ok": True}])  # the first attempt's late ack
    assert result.result() == [{"ok": True}]
    assert not acks.resolve(second, [{"ok": True}])  # already answered


async def test_unknown_and_forgotten_ids_are_ignored() -> None:
    acks = AckRegistry()
    result: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
    ack_id = acks.register(result)
    acks.forget([ack_id])

    assert not acks.resolve(ack_id, [1])
    assert not acks.resolve(99, [1])
    assert not acks.resolve(None, [1])
    assert len(acks) == 0 and not result.done()
