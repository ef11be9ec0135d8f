"""Recovery sessions in a NATS KV bucket, written before a join is acked and refreshed like a
lease, so a SIGKILLed gateway's sessions stay recoverable on any other gateway for the
recovery window and then expire on their own (bucket TTL, history 1: no per-key TTL quirks).
"""

from __future__ import annotations

import contextlib
import logging

from nats.errors import Error as NatsError
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import Error as JetStreamError
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from gateway.broker import BrokerUnavailable
from gateway.nats_client import FanoutClient
from gateway.recovery import SessionRecord
from shared.natsconn import key_value
from shared.subjects import encode_token, namespace_token

log = logging.getLogger(__name__)


class SessionStore:
    def __init__(self, kv: KeyValue) -> None:
        self._kv = kv

    @classmethod
    async def open(cls, nc: FanoutClient, bucket: str, ttl_s: float,
                   replicas: int) -> SessionStore:
        config = KeyValueConfig(bucket=bucket, history=1, ttl=ttl_s, replicas=replicas,
                                storage=StorageType.FILE)
        return cls(await key_value(nc.jetstream(timeout=2.0), config))

    @staticmethod
    def key(nsp: str, pid: str) -> str:
        return f"{namespace_token(nsp)}.{encode_token(pid)}"

    async def put(self, pid: str, record: SessionRecord) -> None:
        try:
            await self._kv.put(self.key(record.nsp, pid), record.encode())
        except (NatsError, JetStreamError, TimeoutError) as exc:
            raise BrokerUnavailable(f"session not saved: {exc or type(exc).__name__}") from exc

    async def get(self, nsp: str, pid: str) -> SessionRecord | None:
        try:
            entry = await self._kv.get(self.key(nsp, pid))
        except KeyNotFoundError:
            return None
        except (NatsError, JetStreamError, TimeoutError, ValueError) as exc:
            raise BrokerUnavailable(f"session not read: {exc or type(exc).__name__}") from exc
        return SessionRecord.decode(entry.value)

    async def delete(self, nsp: str, pid: str) -> None:
        with contextlib.suppress(NatsError, JetStreamError, TimeoutError):
            await self._kv.purge(self.key(nsp, pid))
