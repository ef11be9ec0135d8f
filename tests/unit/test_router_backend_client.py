"""The backend helper and the kick reply parser: answers decoded, failures raised with their
stable code, one retry when a request times out or finds no router."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from client.backend import Backend, BackendError, BackendUnavailable, decode_answer
from router.kicks import kicked_count


def test_ok_answers_are_returned_whole() -> None:
    raw = b'{"ok":true,"connections":2,"offline":false,"status":200}'
    assert decode_answer("send", raw)["connections"] == 2


def test_failures_raise_with_code_status_and_retry_after() -> None:
    raw = orjson.dumps({"ok": False, "status": 429, "error": {
        "code": "rate_limited", "message": "slow down", "retry_after_ms": 12}})
    with pytest.raises(BackendError) as caught:
        decode_answer("publish", raw)
    error = caught.value
    assert (error.code, error.status, error.retry_after_ms) == ("rate_limited", 429, 12)
    assert "publish: rate_limited: slow down" in str(error)


@pytest.mark.parametrize("raw", [b"nope", b"[]", b'{"ok":false}'])
def test_garbage_raises(raw: bytes) -> None:
    with pytest.raises(BackendError):
        decode_answer("kick", raw)


class Msg:
    def __init__(self, data: bytes) -> None:
        self.data = data


class FakeNats:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.requests: list[tuple[str, dict[str, Any]]] = []

    async def request(self, subject: str, payload: bytes, timeout: float) -> Msg:  # noqa: ASYNC109
        self.requests.append((subject, orjson.loads(payload)))
        if self.failures:
            raise self.failures.pop(0)
        return Msg(b'{"ok":true,"status":200}')


@pytest.mark.parametrize("first", [NatsTimeout(), NoRespondersError()])
async def test_one_retry_with_the_same_payload(first: Exception) -> None:
    nc = FakeNats([first])
    backend = Backend(nc, prefix="px")  # type: ignore[arg-type]
    assert (await backend.publish("/chat", "room:a", "e", {"x": 1}))["ok"] is True
    assert backend.retries == 1
    (subject, payload), (_, again) = nc.requests
    assert subject == "px.api.publish"
    assert payload == again and len(payload["id"]) == 32


async def test_no_second_retry() -> None:
    nc = FakeNats([NatsTimeout(), NatsTimeout()])
    with pytest.raises(BackendUnavailable) as caught:
        await Backend(nc).kick("u", "r")  # type: ignore[arg-type]
    assert caught.value.code == "unavailable"
    assert nc.requests[0] == ("sb.api.kick", {"user": "u", "reason": "r"})


async def test_payloads_carry_the_user() -> None:
    nc = FakeNats([])
    backend = Backend(nc)  # type: ignore[arg-type]
    await backend.send("u", "/chat", "e", {}, message_id="m1")
    await backend.connections("u")
    await backend.room_presence("room:a")
    assert nc.requests == [
        ("sb.api.send", {"user": "u", "namespace": "/chat", "event": "e", "data": {},
                         "id": "m1"}),
        ("sb.api.connections", {"user": "u"}),
        ("sb.api.presence", {"room": "room:a", "namespace": "/chat"}),
    ]


@pytest.mark.parametrize(("raw", "expected"), [
    (b'{"kicked":3}', 3), (b'{"kicked":0}', 0), (b'{"kicked":-1}', None),
    (b'{"kicked":true}', None), (b'{"kicked":"2"}', None), (b"[]", None), (b"x", None),
])
def test_kicked_count(raw: bytes, expected: int | None) -> None:
    assert kicked_count(raw) == expected
