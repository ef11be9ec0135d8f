"""From the work queue to the bucket: one fetched batch of gateway notices, folded and stored.

A batch is folded before it is written: of one socket's records only the newest (by the
gateway's per-socket sequence) is stored, of one typist's notices only the last, so a burst
costs one write per socket. The batch is acknowledged only once every write succeeded; if one
failed the whole batch is redelivered, which is harmless because records are idempotent
(:mod:`shared.presence_wire`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Any

from presence.store import PresenceStore
from shared.presence_wire import GatewayBoot, Notice, SocketRecord, TypingNotice


@dataclass(slots=True)
class Batch:
    records: dict[tuple[str, str], SocketRecord] = field(default_factory=dict)
    typing: dict[tuple[str, str], TypingNotice] = field(default_factory=dict)
    boots: list[GatewayBoot] = field(default_factory=list)


def notice_kind(notice: Notice | None) -> str:
    """The metric label of a notice (one of ``metrics.NOTICE_KINDS``)."""
    if isinstance(notice, SocketRecord):
        return "record"
    if isinstance(notice, TypingNotice):
        return "typing"
    if isinstance(notice, GatewayBoot):
        return "boot"
    return "invalid"


def fold(notices: Iterable[Notice | None]) -> Batch:
    """The writes a batch needs; malformed notices (``None``) are dropped."""
    batch = Batch()
    for notice in notices:
        if isinstance(notice, SocketRecord):
            key = (notice.instance, notice.conn)
            known = batch.records.get(key)
            if known is None or known.seq < notice.seq:
                batch.records[key] = notice
        elif isinstance(notice, TypingNotice):
            batch.typing[(notice.room, notice.user)] = notice
        elif isinstance(notice, GatewayBoot):
            batch.boots.append(notice)
    return batch


async def store_batch(store: PresenceStore, batch: Batch) -> list[BaseException]:
    """Every write of ``batch`` at once; the failures (empty when all were stored)."""
    writes: list[Awaitable[Any]] = [store.store_record(r) for r in batch.records.values()]
    writes += [store.store_typing(t) for t in batch.typing.values()]
    writes += [store.store_boot(b) for b in batch.boots]
    results = await asyncio.gather(*writes, return_exceptions=True)
    return [result for result in results if isinstance(result, BaseException)]
