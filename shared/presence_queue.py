"""The presence work queue: a JetStream stream with work-queue retention.

Gateways publish socket records and typing notices to it and get an acknowledgement, so a
notice is stored before the gateway forgets it; presence replicas pull from one shared durable
consumer, so each notice is handed to one replica, and one that dies before acknowledging has
its notices redelivered to another. Core NATS would lose whatever was in flight to a replica
that died. Notices older than ``MAX_AGE_S`` describe sockets long gone and are dropped.
"""

from __future__ import annotations

from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.client import JetStreamContext

from shared.natsconn import ensure_stream
from shared.subjects import Subjects

CONSUMER = "presence"
MAX_AGE_S = 3_600.0
ACK_WAIT_S = 5.0
MAX_ACK_PENDING = 20_000


async def ensure_queue(js: JetStreamContext, subjects: Subjects, replicas: int) -> None:
    """Create the stream, or bring an existing one's limits up to date (idempotent)."""
    config = StreamConfig(
        name=subjects.presence_stream(),
        subjects=[subjects.presence_events()],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        num_replicas=replicas,
        max_age=MAX_AGE_S,
    )
    await ensure_stream(js, config)


def consumer_config() -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=CONSUMER,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=ACK_WAIT_S,
        max_ack_pending=MAX_ACK_PENDING,
    )
