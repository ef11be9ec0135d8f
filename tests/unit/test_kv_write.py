"""KV compare-and-set writes as raw requests: the header block, and how a PubAck is read
(a lost race is ``None``; anything but a sequence is the caller's error)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from shared.kv_write import write_headers, written


class Unavailable(Exception):
    pass


@dataclass(frozen=True)
class Reply:
    data: bytes
    status: bytes = b""
    headers: bytes | None = None


def test_headers_carry_the_expected_revision_and_the_ttl() -> None:
    assert write_headers(None, None) is None
    assert write_headers(0, None) == (
        b"NATS/1.0\r\nNats-Expected-Last-Subject-Sequence: 0\r\n\r\n")
    assert write_headers(None, 5) == b"NATS/1.0\r\nNats-TTL: 5\r\n\r\n"
    assert write_headers(42, 3) == (
        b"NATS/1.0\r\nNats-Expected-Last-Subject-Sequence: 42\r\nNats-TTL: 3\r\n\r\n")


def test_an_acknowledgement_gives_the_revision() -> None:
    assert written(Reply(b'{"stream":"KV_x","seq":7}'), Unavailable, "write") == 7


@pytest.mark.parametrize("code", [10071, 10164])
def test_a_lost_race_is_none(code: int) -> None:
    body = b'{"error":{"code":400,"err_code":%d,"description":"wrong last sequence: 3"}}' % code
    assert written(Reply(body), Unavailable, "write") is None


@pytest.mark.parametrize("reply", [
    Reply(b"", status=b"503"),
    Reply(b'{"error":{"code":503,"err_code":10008,"description":"stream offline"}}'),
    Reply(b"not json"),
    Reply(b'{"stream":"KV_x"}'),
    Reply(b'{"stream":"KV_x","seq":true}'),
    Reply(b'{"stream":"KV_x","seq":"7"}'),
    Reply(b"[1]"),
])
def test_anything_else_is_the_callers_error(reply: Reply) -> None:
    with pytest.raises(Unavailable, match="presence write"):
        written(reply, Unavailable, "presence write")
