"""The server API over NATS on a fake NATS client: one queue-group subscription per
operation, each request dispatched to its operation and answered on its reply subject with
the HTTP answer plus ``status``, bad requests answered with the error body, publishes without
a reply ignored, at most ``max_in_flight`` requests at once, and a clean stop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

import orjson
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError

from router.api import Api
from router.nats_api import QUEUE_GROUP, NatsApi, user_of
from router.requests import OPERATIONS
from shared.ratelimit import TokenBucket
from shared.subjects import Subjects
from tests.support.fake_clock import FakeClock
from tests.unit.test_router_operations import Fakes

Handler = Callable[[Msg], Awaitable[None]]


class FakeMsg:
    def __init__(self, data: bytes, reply: str) -> None:
        self.data = data
        self.reply = reply


class FakeSub:
    def __init__(self, nc: FakeNats, subject: str) -> None:
        self._nc = nc
        self.subject = subject

    async def unsubscribe(self) -> None:
        self._nc.unsubscribed.append(self.subject)
        if self._nc.unsubscribe_fails:
            raise NatsError("connection closed")


class FakeNats:
    """What :class:`NatsApi` uses of a nats-py client: queue subscriptions with callbacks,
    flush and publish, every call recorded."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.queues: dict[str, str | None] = {}
        self.flushes = 0
        self.replies: list[tuple[str, dict[str, Any]]] = []
        self.unsubscribed: list[str] = []
        self.publish_fails = False
        self.unsubscribe_fails = False

    async def subscribe(self, subject: str, queue: str | None = None,
                        cb: Handler | None = None) -> FakeSub:
        assert cb is not None
        self.handlers[subject], self.queues[subject] = cb, queue
        return FakeSub(self, subject)

    async def flush(self, timeout: float = 2) -> None:  # noqa: ASYNC109
        self.flushes += 1

    async def publish(self, subject: str, payload: bytes) -> None:
        if self.publish_fails:
            raise NatsError("connection closed")
        self.replies.append((subject, orjson.loads(payload)))

    async def request(self, operation: str, body: object, reply: str = "_INBOX.r") -> None:
        """Deliver one message to the operation's subscription, as the server would."""
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        await self.handlers[f"px.api.{operation}"](cast(Msg, FakeMsg(data, reply)))


async def started(fakes: Fakes, max_in_flight: int = 256) -> tuple[NatsApi, FakeNats]:
    nc = FakeNats()
    api = Api(fakes.operations(), TokenBucket.full(1000, 1000, 0.0))
    nats_api = NatsApi(cast(Client, nc), Subjects("px"), api, FakeClock(1.0), max_in_flight)
    await nats_api.start()
    return nats_api, nc


async def answers(nats_api: NatsApi, nc: FakeNats) -> list[tuple[str, dict[str, Any]]]:
    await nats_api.stop()  # waits for the requests in flight
    return nc.replies


def test_user_of() -> None:
    assert user_of({"user": "u"}) == "u"
    assert user_of({"room": "r"}) is None
    assert user_of(["user"]) is None
    assert user_of(None) is None


async def test_every_operation_is_subscribed_in_the_router_queue_group() -> None:
    nats_api, nc = await started(Fakes())
    assert nats_api.serving
    assert sorted(nc.handlers) == sorted(f"px.api.{op}" for op in OPERATIONS)
    assert set(nc.queues.values()) == {QUEUE_GROUP}
    assert nc.flushes == 1
    await nats_api.stop()
    assert not nats_api.serving
    assert sorted(nc.unsubscribed) == sorted(nc.handlers)


async def test_each_operation_is_dispatched_and_answered_with_its_status() -> None:
    fakes = Fakes()
    nats_api, nc = await started(fakes)
    await nc.request("publish", {"namespace": "/chat", "room": "room:a", "event": "e",
                                 "data": {"x": 1}}, "r.publish")
    await nc.request("send", {"user": "u", "namespace": "/chat", "event": "e", "data": {}},
                     "r.send")
    await nc.request("connections", {"user": "u"}, "r.connections")
    await nc.request("kick", {"user": "u", "reason": "spam"}, "r.kick")
    await nc.request("presence", {"room": "room:a", "namespace": "/chat"}, "r.presence")
    replies = dict(await answers(nats_api, nc))

    assert replies["r.publish"] == {"ok": True, "seq": 1, "duplicate": False, "status": 200}
    assert fakes.published[0][:2] == ("/chat", "room:a")
    assert fakes.published[1][:2] == ("/chat", "user:u")  # send: the user's own room
    assert replies["r.send"]["status"] == 200
    assert [c["id"] for c in replies["r.connections"]["connections"]] == ["c1", "c2", "c3"]
    assert replies["r.kick"]["status"] == 200 and replies["r.kick"]["reason"] == "spam"
    assert {g for g, _, _ in fakes.kicks} == {"gw-a", "gw-b"}
    assert replies["r.presence"]["users"] == ["alice", "bob"]
    assert fakes.presence_queries == [("/chat", "room:a")]


@pytest.mark.parametrize(("operation", "data"), [
    ("publish", b"{not json"),
    ("publish", b""),
    ("publish", b"   "),
    ("publish", b"[1, 2]"),
    ("send", orjson.dumps({"namespace": "/chat", "event": "e", "data": {}})),  # no user
    ("presence", orjson.dumps({"namespace": "/chat"})),  # no room
])
async def test_bad_requests_are_answered_with_the_error_body(operation: str,
                                                             data: bytes) -> None:
    fakes = Fakes()
    nats_api, nc = await started(fakes)
    await nc.request(operation, data)
    [(subject, reply)] = await answers(nats_api, nc)
    assert subject == "_INBOX.r"
    assert reply["ok"] is False and reply["status"] == 400
    assert reply["error"]["code"] == "bad_request"
    assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
    assert fakes.published == [] and fakes.presence_queries == []


async def test_an_unavailable_backend_is_a_503_reply() -> None:
    fakes = Fakes()
    fakes.registry_down = True
    nats_api, nc = await started(fakes)
    await nc.request("connections", {"user": "u"})
    [(_, reply)] = await answers(nats_api, nc)
    assert reply["status"] == 503 and reply["error"]["code"] == "unavailable"


async def test_a_publish_without_a_reply_subject_is_not_served() -> None:
    fakes = Fakes()
    nats_api, nc = await started(fakes)
    await nc.request("publish", {"namespace": "/chat", "room": "room:a", "event": "e",
                                 "data": {}}, reply="")
    assert await answers(nats_api, nc) == []
    assert fakes.published == []


async def test_a_failed_reply_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    nats_api, nc = await started(Fakes())
    nc.publish_fails = True
    await nc.request("connections", {"user": "u"})
    assert await answers(nats_api, nc) == []
    assert "could not reply" in caplog.text


async def test_stop_survives_a_failing_unsubscribe() -> None:
    nats_api, nc = await started(Fakes())
    nc.unsubscribe_fails = True
    await nats_api.stop()
    assert not nats_api.serving
    assert len(nc.unsubscribed) == len(OPERATIONS)


class SlowPresence(Fakes):
    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def presence(self, namespace: str, room: str) -> object:
        await self.release.wait()
        return await super().presence(namespace, room)


async def test_at_most_max_in_flight_requests_run_at_once() -> None:
    fakes = SlowPresence()
    nats_api, nc = await started(fakes, max_in_flight=1)
    await nc.request("presence", {"room": "room:a"}, "r.slow")  # takes the only slot
    waiting = asyncio.ensure_future(nc.request("connections", {"user": "u"}, "r.fast"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done() and nc.replies == []  # held until the slot is free

    fakes.release.set()
    await waiting
    assert [subject for subject, _ in await answers(nats_api, nc)] == ["r.slow", "r.fast"]


async def test_stop_finishes_the_requests_in_flight() -> None:
    fakes = SlowPresence()
    nats_api, nc = await started(fakes)
    await nc.request("presence", {"room": "room:a"}, "r.slow")
    stopping = asyncio.ensure_future(nats_api.stop())
    await asyncio.sleep(0)
    assert not stopping.done()
    fakes.release.set()
    await stopping
    assert [subject for subject, _ in nc.replies] == ["r.slow"]
