"""PubAck bodies and the header block of a logged publish (the I/O is in the broker
contract suite against a real nats-server)."""

from __future__ import annotations

from shared.room_log import PublishResult
from shared.room_log.publisher import parse_ack, publish_headers


def test_a_stored_message_answers_its_sequence() -> None:
    assert parse_ack(b'{"stream":"SB_CHAT","seq":42}', None) == PublishResult(42, False)


def test_a_duplicate_answers_the_original_sequence() -> None:
    body = b'{"stream":"SB_CHAT","seq":7,"duplicate":true}'
    assert parse_ack(body, None) == PublishResult(7, True)


def test_errors_and_garbage_are_no_result() -> None:
    assert parse_ack(b'{"error":{"code":503,"description":"no quorum"}}', None) is None
    assert parse_ack(b"not json", None) is None
    assert parse_ack(b"[1]", None) is None
    assert parse_ack(b'{"seq":"7"}', None) is None


def test_no_responders_is_no_result() -> None:
    assert parse_ack(b"", b"NATS/1.0 503\r\n\r\n") is None


def test_the_message_id_header_block() -> None:
    assert publish_headers(None) is None
    assert publish_headers("u.c1") == b"NATS/1.0\r\nNats-Msg-Id: u.c1\r\n\r\n"
