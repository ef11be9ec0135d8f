"""The presence store contract (:mod:`tests.unit.test_presence_store_contract`) held against
the NATS KV store on a real nats-server with JetStream, writing through a light request mux
(as the presence service does) and through nats-py's JetStream publish.

Every test gets its own subject prefix, so its bucket is its own; each "replica" is a store on
its own connection to that bucket, and the bucket is deleted when the test ends. Time passes
for real here: TTLs are whole seconds, so the expiry tests wait a second or two.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from nats.aio.client import Client

from devcluster.natsserver import NatsServer
from presence.nats_store import NatsPresenceStore
from presence.store import PresenceStore
from shared.light_client import LightClient
from tests.support.timing import UNIT
from tests.unit.test_presence_store_contract import (
    TOMBSTONE_TTL,
    TYPING_TTL,
    PresenceStoreContract,
    StoreHarness,
)

pytestmark = pytest.mark.integration


async def nats_harness(url: str) -> AsyncIterator[StoreHarness]:
    prefix = f"t{uuid4().hex[:8]}"
    clients: list[Client] = []
    stores: list[NatsPresenceStore] = []

    async def make() -> PresenceStore:
        nc = LightClient()
        await nc.connect(url, connect_timeout=2 * UNIT, max_reconnect_attempts=0)
        clients.append(nc)
        stores.append(await NatsPresenceStore.open(nc, prefix, 1, TOMBSTONE_TTL, TYPING_TTL))
        return stores[-1]

    async def elapse(seconds: float) -> None:
        await asyncio.sleep(seconds)  # the server's clock; the follower then waits (bounded)

    harness = StoreHarness("nats", make, elapse)
    try:
        yield harness
    finally:
        await harness.close()
        for store in stores:
            store.close()
        if clients:
            with contextlib.suppress(Exception):
                await clients[0].jetstream().delete_key_value(f"{prefix}-presence")
        for nc in clients:
            await nc.close()


class TestNatsPresenceStore(PresenceStoreContract):
    @pytest.fixture
    async def harness(self, nats_server: NatsServer) -> AsyncIterator[StoreHarness]:
        async for made in nats_harness(nats_server.url):
            yield made
