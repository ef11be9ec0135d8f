"""The router's presence query on a fake request function: the subject and body presence
expects, its reply decoded, and no replica (none running, none in time, NATS down) as
``PresenceUnavailable``, which the API answers 503."""

from __future__ import annotations

import re

import orjson
import pytest
from nats.aio.msg import Msg
from nats.errors import ConnectionClosedError, NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from router.operations import PresenceUnavailable, presence_answer
from router.presence_query import QUERY_TIMEOUT_S, decode_reply, presence_asker
from router.requests import RoomPresence
from shared.subjects import Subjects


class FakeRequest:
    def __init__(self, reply: bytes = b"", failure: Exception | None = None) -> None:
        self.reply = reply
        self.failure = failure
        self.calls: list[tuple[str, object, float]] = []

    async def __call__(self, subject: str, payload: bytes, timeout: float) -> Msg:  # noqa: ASYNC109
        self.calls.append((subject, orjson.loads(payload), timeout))
        if self.failure is not None:
            raise self.failure
        return Msg(None, subject=subject, data=self.reply)  # type: ignore[arg-type]


async def test_asks_the_prefixs_query_subject_with_namespace_and_room() -> None:
    reply = {"ok": True, "room": "room:a", "users": ["alice"], "count": 1, "truncated": False}
    request = FakeRequest(orjson.dumps(reply))
    ask = presence_asker(request, Subjects("px"))
    assert await ask("/chat", "room:a") == reply
    assert request.calls == [("px.presence.query", {"namespace": "/chat", "room": "room:a"},
                              QUERY_TIMEOUT_S)]
    assert Subjects("px").presence_query() == "px.presence.query"


async def test_the_timeout_is_passed_on() -> None:
    request = FakeRequest(b"{}")
    await presence_asker(request, Subjects(), timeout=0.25)("/", "r")
    assert request.calls[0][2] == 0.25


@pytest.mark.parametrize(("failure", "message"), [
    (NoRespondersError(), "no presence replica is running"),
    (NatsTimeout(), "no presence replica answered within 2 s"),
    (TimeoutError(), "no presence replica answered within 2 s"),
    (ConnectionClosedError(), "NATS could not carry the query now (ConnectionClosedError)"),
])
async def test_no_answer_is_presence_unavailable(failure: Exception, message: str) -> None:
    ask = presence_asker(FakeRequest(failure=failure), Subjects())
    with pytest.raises(PresenceUnavailable, match=re.escape(message)):
        await ask("/chat", "room:a")


async def test_a_reply_that_is_not_json_is_503() -> None:
    ask = presence_asker(FakeRequest(b"\xff not json"), Subjects())
    reply = await ask("/chat", "room:a")
    assert reply is None
    answer = presence_answer(RoomPresence("/chat", "room:a"), reply)
    assert (answer.status, answer.body["error"]["code"]) == (503, "unavailable")


def test_decode_reply() -> None:
    assert decode_reply(b'{"ok":true}') == {"ok": True}
    assert decode_reply(b"[1]") == [1]
    assert decode_reply(b"") is None
    assert decode_reply(b"{nope") is None
