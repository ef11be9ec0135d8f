"""The request mux as plain logic over a fake client: replies by token, batches until a status,
one barrier message per loop pass, and the sweeper's timeout. The wire order the barrier rests
on is checked against a real nats-server in tests/integration/test_nats_broker_contract.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import pytest

from gateway import eager
from gateway.broker import BrokerUnavailable
from shared.request_mux import RawClient, Reply, RequestMux
from shared.room_log.nats_log import last_sequences

EOB = b"NATS/1.0 204 EOB\r\n\r\n"


@dataclass
class _Sub:
    _id: int


class FakeClient:
    """What the mux uses of :class:`FanoutClient`: an inbox, a routed SUB and queued PUBs."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, bytes | None]] = []
        self.handler: Callable[[bytes, bytes, bytes | None], None] | None = None

    def new_inbox(self) -> str:
        return "_INBOX.test"

    async def subscribe(self, subject: str) -> _Sub:
        assert subject == "_INBOX.test.*"
        return _Sub(1)

    def route_replies(self, sid: int, handler: Callable[[bytes, bytes, bytes | None], None]
                      ) -> None:
        self.handler = handler

    def publish_nowait(self, subject: str, payload: bytes, reply: bytes = b"",
                       headers: bytes | None = None) -> None:
        self.sent.append((subject, payload, reply, headers))

    def answer(self, reply: bytes | str, data: bytes, headers: bytes | None = None) -> None:
        assert self.handler is not None
        self.handler(reply.encode() if isinstance(reply, str) else reply, data, headers)


async def started(timeout_s: float = 2.0) -> tuple[RequestMux, FakeClient]:
    client = FakeClient()
    mux = RequestMux(cast(RawClient, client), timeout_s, BrokerUnavailable)
    await mux.start()
    return mux, client


async def test_a_reply_resolves_its_own_request() -> None:
    mux, client = await started()
    first = asyncio.ensure_future(mux.request("a", b"1"))
    second = asyncio.ensure_future(mux.request("b", b"2", b"NATS/1.0\r\nX: y\r\n\r\n"))
    await asyncio.sleep(0)
    (_, _, reply_a, _), (_, _, reply_b, headers_b) = client.sent
    assert headers_b == b"NATS/1.0\r\nX: y\r\n\r\n"

    client.answer(reply_b, b"two")
    client.answer(reply_a, b"one")

    assert (await first).data == b"one"
    assert (await second).data == b"two"
    mux.close()


async def test_a_batch_collects_until_the_status_reply() -> None:
    mux, client = await started()
    replies = mux.batch("$JS.API.DIRECT.GET.S", b"{}")
    reply = client.sent[0][2]
    client.answer(reply, b"m1", b"NATS/1.0\r\nNats-Sequence: 4\r\n\r\n")
    client.answer(reply, b"m2", b"NATS/1.0\r\nNats-Sequence: 9\r\n\r\n")
    assert not replies.done()

    client.answer(reply, b"", EOB)

    assert [r.data for r in await replies] == [b"m1", b"m2", b""]
    assert (await replies)[-1].status == b"204"
    mux.close()


async def test_barriers_of_one_pass_share_one_message_to_our_own_inbox() -> None:
    mux, client = await started()
    first, second = mux.barrier(), mux.barrier()
    assert client.sent == []  # sent at the end of the pass, behind what it must follow

    await asyncio.sleep(0)

    ((subject, payload, reply, _),) = client.sent
    assert subject.startswith(mux.inbox) and payload == b"" and reply == b""
    later = mux.barrier()
    client.answer(subject, b"")
    await first
    await second
    await asyncio.sleep(0)
    assert not later.done()
    mux.close()


async def test_coroutines_run_eagerly_can_wait_for_the_same_barrier() -> None:
    """Two connections' actions, run inside one callback by :func:`gateway.eager.start`,
    join rooms in the same pass: neither may find the other's wait in its way."""
    mux, client = await started()
    done: list[str] = []

    async def join(name: str) -> None:
        await mux.barrier()
        done.append(name)

    tasks = [eager.start(join("a")), eager.start(join("b"))]
    await asyncio.sleep(0)
    client.answer(client.sent[0][0], b"")
    await asyncio.gather(*(t for t in tasks if t is not None))

    assert sorted(done) == ["a", "b"]
    mux.close()


async def test_a_barrier_that_could_not_be_sent_fails_every_waiter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mux, client = await started()

    def refuse(*_: object) -> None:
        raise BrokerUnavailable("not connected to NATS")

    monkeypatch.setattr(client, "publish_nowait", refuse)
    first, second = mux.barrier(), mux.barrier()
    await asyncio.sleep(0)

    for waiter in (first, second):
        with pytest.raises(BrokerUnavailable):
            await waiter
    mux.close()


async def test_what_stays_unanswered_fails_after_the_timeout() -> None:
    mux, _ = await started(timeout_s=0.01)
    with pytest.raises(BrokerUnavailable):
        await asyncio.wait_for(mux.request("a", b""), 2)
    mux.close()


async def test_a_sent_request_answers_its_callback_once() -> None:
    mux, client = await started()
    answers: list[list[Reply] | None] = []
    mux.send("$JS.API.x", b"body", None, answers.append)
    assert mux.in_flight == 1
    reply_to = client.sent[-1][2]
    client.answer(reply_to, b"ack")
    client.answer(reply_to, b"late copy")
    assert answers == [[Reply(b"ack", None)]] and mux.in_flight == 0
    mux.close()


async def test_a_sent_request_is_answered_none_on_timeout_and_on_close() -> None:
    mux, _ = await started(timeout_s=0.01)
    timed_out: asyncio.Future[list[Reply] | None] = asyncio.get_running_loop().create_future()
    mux.send("a", b"", None, timed_out.set_result)
    assert await asyncio.wait_for(timed_out, 5) is None
    closed: list[list[Reply] | None] = []
    mux.send("b", b"", None, closed.append)
    mux.close()
    assert closed == [None]


async def test_nothing_is_sent_before_the_inbox_is_subscribed() -> None:
    mux = RequestMux(cast(RawClient, FakeClient()), 1.0, BrokerUnavailable)
    with pytest.raises(BrokerUnavailable):
        await mux.request("a", b"")


@pytest.mark.parametrize(("headers", "status"), [
    (None, b""),
    (b"NATS/1.0\r\nNats-Sequence: 3\r\n\r\n", b""),
    (b"NATS/1.0 503\r\n\r\n", b"503"),
    (b"NATS/1.0 404 Message Not Found\r\n\r\n", b"404"),
])
def test_status_of_a_reply(headers: bytes | None, status: bytes) -> None:
    assert Reply(b"", headers).status == status


def _last(subject: str, seq: int) -> Reply:
    return Reply(b"body", f"NATS/1.0\r\nNats-Stream: S\r\nNats-Subject: {subject}\r\n"
                          f"Nats-Sequence: {seq}\r\nNats-Time-Stamp: x\r\n\r\n".encode())


def test_last_sequences_of_a_multi_last_probe() -> None:
    batches = [[_last("sb.log.chat.room=3Aa", 7), _last("sb.log.chat.user=3Ab", 12),
                Reply(b"", EOB)],
               [Reply(b"", b"NATS/1.0 404 No Results\r\n\r\n")]]

    assert last_sequences(batches) == {"sb.log.chat.room=3Aa": 7, "sb.log.chat.user=3Ab": 12}


@pytest.mark.parametrize("end", [b"NATS/1.0 503\r\n\r\n", b"NATS/1.0 408 Bad Request\r\n\r\n"])
def test_a_failed_probe_is_unavailable(end: bytes) -> None:
    with pytest.raises(BrokerUnavailable):
        last_sequences([[Reply(b"", end)]])


def test_a_probe_reply_without_a_sequence_is_unavailable() -> None:
    broken = Reply(b"x", b"NATS/1.0\r\nNats-Subject: a\r\n\r\n")
    with pytest.raises(BrokerUnavailable):
        last_sequences([[broken, Reply(b"", EOB)]])
