"""The fan-out body on NATS: the argument array, then NUL and length-prefixed attachments."""

from __future__ import annotations

import pytest

from shared import envelope

ARGS = b'["message:received",{"text":"hi \\u0000 there"}]'


@pytest.mark.parametrize(
    "attachments",
    [(), (b"\x89PNG\r\n\x1a\n",), (b"", b"\x00" * 70_000)],
    ids=["none", "one", "two"],
)
def test_pack_unpack_round_trip(attachments: tuple[bytes, ...]) -> None:
    assert envelope.unpack(envelope.pack(ARGS, attachments)) == (ARGS, attachments)


def test_without_attachments_the_body_is_the_args_themselves() -> None:
    assert envelope.pack(ARGS) == ARGS


def test_attachments_are_length_prefixed_big_endian() -> None:
    assert envelope.pack(b"[1]", (b"ab", b"c")) == b"[1]\x00\x00\x00\x00\x02ab\x00\x00\x00\x01c"


@pytest.mark.parametrize(
    "body",
    [
        b"[1]\x00\x00",  # length cut short
        b"[1]\x00\x00\x00\x00",  # three of four length bytes
        b"[1]\x00\x00\x00\x00\x05abc",  # blob shorter than its length
        b"[1]\x00\x00\x00\x00\x01a\x00",  # a second length cut short
        b"[1]\x00\xff\xff\xff\xff",  # a 4 GiB length with nothing behind it
    ],
)
def test_malformed_bodies_are_none(body: bytes) -> None:
    assert envelope.unpack(body) is None


def test_the_publishers_stamp_is_read_without_parsing() -> None:
    assert envelope.stamp_ms(b'["message:received",{"room":"r","ts":1764000000123}]') == (
        1764000000123)
    assert envelope.stamp_ms(b'["message:received",{"text":"\\"ts\\":5"}]') is None
    assert envelope.stamp_ms(b'["notice",{"text":"hi"}]') is None
    assert envelope.stamp_ms(b'["x",{"ts":"soon"}]') is None
