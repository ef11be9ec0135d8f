"""Recovery offsets: what a gateway writes, and that only what a gateway writes parses back."""

from __future__ import annotations

import pytest

from shared.protocol.offsets import MAX_OFFSET_LENGTH, Offset, encode_offset, parse_offset


def test_a_plain_frontier() -> None:
    assert encode_offset(1234) == "1234"
    assert encode_offset(0, {}) == "0"
    assert parse_offset("1234") == Offset(1234)
    assert parse_offset("0") == Offset(0)


def test_lagging_rooms_are_listed_sorted_with_encoded_names() -> None:
    text = encode_offset(1234, {"room:b": 7, "room:a": 1180})

    assert text == "1234|room=3Aa:1180|room=3Ab:7"


@pytest.mark.parametrize("lagging", [
    {},
    {"room:a": 3},
    {"room:a": 3, "user:alice@example.com": 9, "a:b:c": 0},
    {"x" * 128: 12, "_-": 1},
    {"é:€": 5},
])
@pytest.mark.parametrize("frontier", [0, 1, 1234, 2**63])
def test_round_trip(frontier: int, lagging: dict[str, int]) -> None:
    offset = parse_offset(encode_offset(frontier, lagging))

    assert offset is not None
    assert offset.frontier == frontier
    assert dict(offset.lagging) == lagging


def test_start_for_a_lagging_room_is_its_own_position_else_the_frontier() -> None:
    offset = parse_offset(encode_offset(50, {"room:a": 12, "room:b": 70}))

    assert offset is not None
    assert offset.start_for("room:a") == 12
    assert offset.start_for("room:b") == 70
    assert offset.start_for("room:c") == 50


@pytest.mark.parametrize("text", [
    None, 12, 12.0, b"12", ["12"], {"offset": "12"},
    "", " ", " 12", "12 ", "-1", "+1", "1.5", "1e3", "0x10", "abc", "12abc",
    "|", "12|", "|12", "12||room=3Aa:1",
    "12|room=3Aa", "12|room=3Aa:", "12|:5", "12|room=3Aa:-1", "12|room=3Aa:x",
    "12|room:a:1",  # raw separator in a name: not how a gateway writes names
    "12|room=3aa:1",  # lower-case hex is not the canonical encoding
    "12|room=3Aa:1:2", "12|room a:1", "12|room.a:1", "12|=ZZ:1", "12|=:1",
])
def test_garbage_is_rejected_without_raising(text: object) -> None:
    assert parse_offset(text) is None


def test_overlong_offsets_are_rejected() -> None:
    assert parse_offset("9" * 20) is not None
    assert parse_offset("9" * 21) is None  # no sequence has more digits than a uint64
    rooms = {f"room:{n:04d}": n for n in range(300)}
    near_limit = encode_offset(1, rooms)
    assert len(near_limit) <= MAX_OFFSET_LENGTH and parse_offset(near_limit) is not None
    assert parse_offset(near_limit + "|" + "x" * MAX_OFFSET_LENGTH) is None
    long_room = encode_offset(1, {"r" * MAX_OFFSET_LENGTH: 1})
    assert parse_offset(long_room) is None


@pytest.mark.parametrize("text", ["\u00b2", "1\u00b2", "\uff11\uff12", "12|room=3Aa:\uff11"])
def test_only_ascii_digits_are_sequences(text: str) -> None:
    assert parse_offset(text) is None
