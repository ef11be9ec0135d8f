"""Recovery records in a NATS KV bucket, written before a join is acked and refreshed like a
lease, so a SIGKILLed gateway's sessions stay recoverable on any other gateway for the
recovery window and then expire on their own (bucket TTL, history 1: no per-key TTL quirks).

A put that something waits for (the CONNECT reply, a join's ack) is one request through the
light mux (:mod:`shared.request_mux`), its PubAck read from the raw reply; so is a recovery's
get, from the stream leader's message-get API. The record a
closing socket leaves behind waits for nothing: the live record already keeps the session
recoverable (for longer than the closing one will), so those puts are sent without an ack,
all of one loop pass together, behind everything this gateway queued before them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging

import orjson
from nats.errors import Error as NatsError
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import Error as JetStreamError
from nats.js.kv import KeyValue

from gateway.broker import BrokerUnavailable
from gateway.recovery import RecoveryRecord
from shared.light_client import LightClient
from shared.natsconn import key_value
from shared.request_mux import Reply, RequestMux
from shared.room_log.publisher import parse_ack
from shared.subjects import kv_stream, kv_subject_prefix, session_key

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 2.0


class RecoveryStore:
    """Recovery records by namespace and recovery id (``pid``)."""

    def __init__(self, kv: KeyValue, nc: LightClient, requests: RequestMux,
                 bucket: str) -> None:
        self._kv = kv
        self._nc = nc
        self._requests = requests
        self._subject_prefix = kv_subject_prefix(bucket)
        self._msg_get = f"$JS.API.STREAM.MSG.GET.{kv_stream(bucket)}"
        self._later: dict[str, bytes] = {}

    @classmethod
    async def open(cls, nc: LightClient, bucket: str, ttl_s: float,
                   replicas: int) -> RecoveryStore:
        config = KeyValueConfig(bucket=bucket, history=1, ttl=ttl_s, replicas=replicas,
                                storage=StorageType.FILE)
        kv = await key_value(nc.jetstream(timeout=REQUEST_TIMEOUT_S), config)
        requests = RequestMux(nc, REQUEST_TIMEOUT_S, BrokerUnavailable)
        await requests.start()
        return cls(kv, nc, requests, bucket)

    key = staticmethod(session_key)

    async def put(self, pid: str, record: RecoveryRecord) -> None:
        subject = self._subject_prefix + self.key(record.nsp, pid)
        self._later.pop(subject, None)  # this one is newer
        try:
            reply = await self._requests.request(subject, record.encode())
        except BrokerUnavailable as exc:
            raise BrokerUnavailable(f"session not saved: {exc}") from exc
        if parse_ack(reply.data, reply.headers) is None:
            raise BrokerUnavailable("session not saved: the bucket refused it")

    def put_later(self, pid: str, record: RecoveryRecord) -> None:
        """Save without waiting or an acknowledgement (see the module's docstring)."""
        if not self._later:
            asyncio.get_running_loop().call_soon(self._send_later)
        self._later[self._subject_prefix + self.key(record.nsp, pid)] = record.encode()

    def _send_later(self) -> None:
        later, self._later = self._later, {}
        try:
            for subject, body in later.items():
                self._nc.publish_nowait(subject, body)
        except BrokerUnavailable as exc:
            log.warning("closing session records not saved (%s); the live ones stand", exc)

    async def get(self, nsp: str, pid: str) -> RecoveryRecord | None:
        """One request through the light mux to the stream leader's message-get API (a direct
        get may be answered by a replica that has not got the newest record yet)."""
        subject = self._subject_prefix + self.key(nsp, pid)
        try:
            reply = await self._requests.request(
                self._msg_get, orjson.dumps({"last_by_subj": subject}))
        except BrokerUnavailable as exc:
            raise BrokerUnavailable(f"session not read: {exc}") from exc
        return RecoveryRecord.decode(stored_value(reply))

    async def delete(self, nsp: str, pid: str) -> None:
        self._later.pop(self._subject_prefix + self.key(nsp, pid), None)
        with contextlib.suppress(NatsError, JetStreamError, TimeoutError):
            await self._kv.purge(self.key(nsp, pid))

    def close(self) -> None:
        self._send_later()
        self._requests.close()


def stored_value(reply: Reply) -> bytes | None:
    """The value a message-get reply holds; ``None`` for no message or a delete marker.
    Raises :class:`BrokerUnavailable` for an error or an answer that cannot be read."""
    if reply.status:
        raise BrokerUnavailable(f"session not read ({reply.status.decode()})")
    try:
        answer = orjson.loads(reply.data)
        error = answer.get("error")
        if isinstance(error, dict):
            if error.get("code") == 404:
                return None
            raise BrokerUnavailable(f"session not read: {error.get('description')}")
        message = answer["message"]
        headers = base64.b64decode(message.get("hdrs") or b"")
        if b"KV-Operation:" in headers:
            return None
        return base64.b64decode(message.get("data") or b"")
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, binascii.Error) as exc:
        raise BrokerUnavailable("session not read: unreadable answer") from exc
