"""Every answer frame the gateway sends, built by plain calls (``gateway/replies.py``)."""

from __future__ import annotations

from gateway.actions import AckTo, Failed, NamespaceSocket, SendBinary, SendText
from gateway.replies import (
    Failure,
    ack_frames,
    acknowledge,
    answer_failure,
    connect_reply,
    io_failed,
    too_many_connections,
)
from shared.jwtauth import Identity
from shared.protocol.errors import ErrorCode

ALICE = Identity("alice", None, ("room:*",), 0.0)


def test_an_ack_is_one_text_frame() -> None:
    assert ack_frames(AckTo("/chat", 3), {"ok": True}) == [SendText('43/chat,3[{"ok":true}]')]


def test_an_ack_with_binary_is_a_binary_ack_and_its_attachments() -> None:
    frames = ack_frames(AckTo("/", 1), {"ok": True, "blob": b"\x01"})

    assert frames == [SendText('461-1[{"ok":true,"blob":{"_placeholder":true,"num":0}}]'),
                      SendBinary(b"\x01")]


def test_acknowledge_without_an_ack_id_sends_nothing() -> None:
    assert acknowledge(AckTo("/chat", None), {"ok": True}) == []
    assert acknowledge(AckTo("/chat", 2), {"ok": True}) == ack_frames(AckTo("/chat", 2),
                                                                      {"ok": True})


def test_a_failure_is_an_error_ack_or_a_request_error_event() -> None:
    failure = Failure(ErrorCode.RATE_LIMITED, "slow down", 250)

    assert answer_failure(AckTo("/chat", 5), "room:join", failure) == SendText(
        '43/chat,5[{"ok":false,"error":{"code":"rate_limited","message":"slow down",'
        '"retry_after_ms":250}}]')
    assert answer_failure(AckTo("/chat", None), "room:join", failure) == SendText(
        '42/chat,["request:error",{"code":"rate_limited","message":"slow down",'
        '"retry_after_ms":250,"event":"room:join"}]')


def test_an_io_failure_is_counted_and_carries_a_retry_hint() -> None:
    actions = io_failed(AckTo("/chat", 1), None, ErrorCode.UNAVAILABLE, "try again")

    assert actions == [Failed("/chat", "unavailable"), SendText(
        '43/chat,1[{"ok":false,"error":{"code":"unavailable","message":"try again",'
        '"retry_after_ms":1000}}]')]


def test_connect_reply_carries_sid_and_pid_only_when_recoverable() -> None:
    assert connect_reply(NamespaceSocket("/", "s1", ALICE)) == '40{"sid":"s1"}'
    assert connect_reply(NamespaceSocket("/chat", "s1", ALICE, pid="p1")) == (
        '40/chat,{"sid":"s1","pid":"p1"}')


def test_the_per_user_limit_is_a_connect_error() -> None:
    assert too_many_connections("/chat") == SendText(
        '44/chat,{"message":"too many connections","data":{"code":"too_many_connections"}}')
