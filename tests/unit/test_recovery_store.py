"""The recovery store over a fake client: a put that something waits for is one request whose
PubAck decides, and the records closing sockets leave go out together at the end of the pass,
without an ack, newest per session; a get's message-get answer read raw. Recovery itself runs
against NATS in tests/integration."""

from __future__ import annotations

import asyncio
import base64
from typing import Any, cast

import orjson
import pytest

from gateway.broker import BrokerUnavailable
from gateway.recovery import RecoveryRecord
from gateway.recovery_store import RecoveryStore, stored_value
from shared.request_mux import RawClient, Reply, RequestMux
from tests.unit.test_request_mux import FakeClient

BUCKET = "sb-sessions"


class FakeKV:
    def __init__(self) -> None:
        self.purged: list[str] = []

    async def purge(self, key: str) -> None:
        self.purged.append(key)


async def store() -> tuple[RecoveryStore, FakeClient, FakeKV]:
    client, kv = FakeClient(), FakeKV()
    mux = RequestMux(cast(RawClient, client), 1.0, BrokerUnavailable)
    await mux.start()
    return RecoveryStore(cast(Any, kv), cast(Any, client), mux, BUCKET), client, kv


def record(pid: str = "p1", until: float = 0.0) -> RecoveryRecord:
    return RecoveryRecord("alice", "/chat", f"sid-{pid}", {"user:alice": 3}, until)


async def test_a_put_is_one_request_that_its_pub_ack_confirms() -> None:
    sessions, client, _ = await store()
    saving = asyncio.ensure_future(sessions.put("p1", record()))
    await asyncio.sleep(0)

    ((subject, body, reply, _),) = client.sent
    assert subject == f"$KV.{BUCKET}.{RecoveryStore.key('/chat', 'p1')}"
    assert RecoveryRecord.decode(body) == record()
    client.answer(reply, orjson.dumps({"stream": f"KV_{BUCKET}", "seq": 7}))
    await saving


async def test_a_refused_put_is_unavailable() -> None:
    sessions, client, _ = await store()
    saving = asyncio.ensure_future(sessions.put("p1", record()))
    await asyncio.sleep(0)

    client.answer(client.sent[0][2], orjson.dumps({"error": {"code": 503}}))

    with pytest.raises(BrokerUnavailable):
        await saving


async def test_closing_records_go_out_together_at_the_end_of_the_pass_without_acks() -> None:
    sessions, client, _ = await store()
    sessions.put_later("p1", record("p1", until=1.0))
    sessions.put_later("p2", record("p2"))
    sessions.put_later("p1", record("p1", until=2.0))  # newer: replaces the first
    assert client.sent == []

    await asyncio.sleep(0)

    assert [(s, r) for s, _, r, _ in client.sent] == [
        (f"$KV.{BUCKET}.{RecoveryStore.key('/chat', 'p1')}", b""),
        (f"$KV.{BUCKET}.{RecoveryStore.key('/chat', 'p2')}", b""),
    ]
    first = RecoveryRecord.decode(client.sent[0][1])
    assert first is not None and first.until == 2.0


async def test_a_pending_closing_record_never_lands_after_a_newer_put_or_a_delete() -> None:
    sessions, client, kv = await store()
    sessions.put_later("p1", record("p1"))
    sessions.put_later("p2", record("p2"))
    saving = asyncio.ensure_future(sessions.put("p1", record("p1", until=9.0)))
    await sessions.delete("/chat", "p2")
    await asyncio.sleep(0)

    p1 = f"$KV.{BUCKET}.{RecoveryStore.key('/chat', 'p1')}"
    assert [s for s, _, _, _ in client.sent] == [p1] * len(client.sent)  # nothing of p2
    assert client.sent[-1][2] != b""  # the acknowledged, newer record goes last
    assert kv.purged == [RecoveryStore.key("/chat", "p2")]
    client.answer(client.sent[-1][2], orjson.dumps({"stream": f"KV_{BUCKET}", "seq": 8}))
    await saving


def message_get(data: bytes, hdrs: bytes = b"") -> bytes:
    message: dict[str, Any] = {"subject": "$KV.sb-sessions.chat.p1", "seq": 4,
                               "data": base64.b64encode(data).decode()}
    if hdrs:
        message["hdrs"] = base64.b64encode(hdrs).decode()
    return orjson.dumps({"type": "io.nats.jetstream.api.v1.stream_msg_get_response",
                         "message": message})


def test_a_message_get_answer_gives_the_stored_value() -> None:
    assert stored_value(Reply(message_get(b'{"v":1}'), None)) == b'{"v":1}'


@pytest.mark.parametrize("data", [
    orjson.dumps({"error": {"code": 404, "err_code": 10037, "description": "no message found"}}),
    message_get(b"", b"NATS/1.0\r\nKV-Operation: DEL\r\n\r\n"),
    message_get(b"", b"NATS/1.0\r\nKV-Operation: PURGE\r\n\r\n"),
])
def test_no_message_or_a_delete_marker_is_no_record(data: bytes) -> None:
    assert stored_value(Reply(data, None)) is None


@pytest.mark.parametrize("reply", [
    Reply(b"", b"NATS/1.0 503\r\n\r\n"),
    Reply(orjson.dumps({"error": {"code": 500, "description": "stream offline"}}), None),
    Reply(b"not json", None),
    Reply(b"[]", None),
    Reply(orjson.dumps({"message": {"data": "!!not base64!!"}}), None),
    Reply(orjson.dumps({"type": "io.nats.jetstream.api.v1.stream_msg_get_response"}), None),
])
def test_an_error_or_an_unreadable_answer_is_unavailable(reply: Reply) -> None:
    with pytest.raises(BrokerUnavailable, match="session not read"):
        stored_value(reply)
