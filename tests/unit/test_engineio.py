"""Engine.IO v4 over WebSocket: golden frames both ways, and a parser that never raises."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from shared.protocol.engineio import (
    MESSAGE_PREFIX,
    PING_FRAME,
    PONG_FRAME,
    EioPacket,
    EioType,
    InvalidFrame,
    encode_open,
    parse_frame,
)
from tests.unit.wire_fixtures import engineio_cases

CASES = engineio_cases()
OPEN_CASES = [case for case in CASES if "open" in case]


def case_id(case: dict[str, Any]) -> str:
    return str(case["name"])


def frame_of(case: dict[str, Any]) -> str | bytes:
    return bytes.fromhex(case["frame_hex"]) if "frame_hex" in case else str(case["frame"])


def test_the_fixtures_cover_every_engineio_type() -> None:
    assert {case["type"] for case in CASES} == {int(kind) for kind in EioType}


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_golden_frame_parses_to_its_packet(case: dict[str, Any]) -> None:
    data: str | bytes
    if "data_hex" in case:
        data = bytes.fromhex(case["data_hex"])
    elif "open" in case:
        data = case["frame"][1:]
    else:
        data = case["data"]

    assert parse_frame(frame_of(case)) == EioPacket(EioType(case["type"]), data)


@pytest.mark.parametrize("case", OPEN_CASES, ids=case_id)
def test_open_packet_encodes_to_the_exact_frame(case: dict[str, Any]) -> None:
    fields = case["open"]

    text = encode_open(fields["sid"], fields["ping_interval_ms"], fields["ping_timeout_ms"],
                       fields["max_payload"])

    assert text == case["frame"]
    assert list(json.loads(text[1:])) == [
        "sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"
    ]


def test_heartbeat_and_message_frames_are_the_bare_type_digits() -> None:
    assert (PING_FRAME, PONG_FRAME, MESSAGE_PREFIX) == ("2", "3", "4")


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        ("", "empty"),
        ("7", "type 7"),
        ("9hello", "type 9"),
        ("x", "letter"),
        ("\u0664hello", "arabic-indic 4"),
        ("b!!!", "base64 alphabet"),
        ("bAQI", "base64 padding"),
        ("b AQID", "base64 with space"),
    ],
)
def test_bad_text_frames_are_invalid(frame: str, why: str) -> None:
    assert isinstance(parse_frame(frame), InvalidFrame), why


def test_any_binary_frame_is_a_message() -> None:
    assert parse_frame(b"") == EioPacket(EioType.MESSAGE, b"")
    assert parse_frame(b"4hello") == EioPacket(EioType.MESSAGE, b"4hello")


def test_random_frames_never_raise() -> None:
    rng = random.Random(4)
    alphabet = "0123456789b=+/ -_AQIDxyz[]\"\ud800\u00e9"
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
        assert isinstance(parse_frame(text), EioPacket | InvalidFrame), repr(text)
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 12)))
        assert isinstance(parse_frame(blob), EioPacket)
