"""The recovery store against a real nats-server with JetStream: what a put wrote is what a
get reads (from the stream leader), a deleted or never-written session reads as none, and
the closing records sent without an ack land too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest

from devcluster.natsserver import NatsServer
from gateway.recovery import RecoveryRecord
from gateway.recovery_store import RecoveryStore
from shared.light_client import LightClient

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(nats_server: NatsServer) -> AsyncIterator[RecoveryStore]:
    nc = LightClient()
    await nc.connect(nats_server.url, connect_timeout=2, max_reconnect_attempts=0)
    bucket = f"t{uuid4().hex[:8]}-sessions"
    opened = await RecoveryStore.open(nc, bucket, 60.0, 1)
    try:
        yield opened
    finally:
        opened.close()
        await nc.jetstream().delete_key_value(bucket)
        await nc.close()


def record(pid: str, room_seq: int) -> RecoveryRecord:
    return RecoveryRecord("alice", "/chat", f"sid-{pid}", {"room:a": room_seq}, 0.0)


async def test_a_get_reads_the_newest_put(store: RecoveryStore) -> None:
    await store.put("p1", record("p1", 3))
    await store.put("p1", record("p1", 7))

    found = await store.get("/chat", "p1")

    assert found is not None and found.rooms == {"room:a": 7}


async def test_a_session_never_written_or_deleted_reads_as_none(store: RecoveryStore) -> None:
    assert await store.get("/chat", "nobody") is None

    await store.put("p2", record("p2", 1))
    await store.delete("/chat", "p2")

    assert await store.get("/chat", "p2") is None


async def test_a_closing_record_sent_without_an_ack_is_read_back(store: RecoveryStore) -> None:
    await store.put("p3", record("p3", 1))
    store.put_later("p3", record("p3", 9))

    for _ in range(100):
        found = await store.get("/chat", "p3")
        if found is not None and found.rooms == {"room:a": 9}:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"closing record not read back: {found}")
