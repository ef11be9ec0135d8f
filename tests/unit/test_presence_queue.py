"""The presence work queue's set-up on a fake JetStream: a work-queue stream on the
presence subject with notices dropped after an hour, created once and brought up to date
(idempotent); one shared durable consumer with explicit acks."""

from __future__ import annotations

from typing import cast

from nats.js.api import AckPolicy, DeliverPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext

from shared.presence_queue import (
    ACK_WAIT_S,
    CONSUMER,
    MAX_ACK_PENDING,
    MAX_AGE_S,
    consumer_config,
    ensure_queue,
)
from shared.subjects import Subjects
from tests.unit.test_room_log import FakeJetStream


async def test_the_queue_is_a_work_queue_stream_on_the_presence_subject() -> None:
    fake = FakeJetStream()
    subjects = Subjects("px")
    await ensure_queue(cast(JetStreamContext, fake), subjects, replicas=3)
    config = fake.streams[subjects.presence_stream()]
    assert isinstance(config, StreamConfig)
    assert config.subjects == [subjects.presence_events()]
    assert config.retention == RetentionPolicy.WORK_QUEUE
    assert config.storage == StorageType.FILE
    assert config.num_replicas == 3
    assert config.max_age == MAX_AGE_S == 3_600.0


async def test_setting_up_again_is_idempotent_and_updates_the_limits() -> None:
    fake = FakeJetStream()
    js = cast(JetStreamContext, fake)
    subjects = Subjects("px")
    await ensure_queue(js, subjects, replicas=1)
    await ensure_queue(js, subjects, replicas=1)
    assert fake.updates == []
    await ensure_queue(js, subjects, replicas=3)
    assert fake.updates == [subjects.presence_stream()]
    config = fake.streams[subjects.presence_stream()]
    assert isinstance(config, StreamConfig) and config.num_replicas == 3


def test_one_shared_durable_consumer_with_explicit_acks() -> None:
    config = consumer_config()
    assert config.durable_name == CONSUMER == "presence"
    assert config.ack_policy == AckPolicy.EXPLICIT
    assert config.deliver_policy == DeliverPolicy.ALL
    assert config.ack_wait == ACK_WAIT_S
    assert config.max_ack_pending == MAX_ACK_PENDING
    assert consumer_config() == config  # every replica binds the same consumer
