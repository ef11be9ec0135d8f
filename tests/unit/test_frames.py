"""Server-side RFC 6455 framing (unmasked, FIN set) for the fan-out's pre-encoded frames."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from shared.protocol.frames import BINARY, TEXT, event_frames, event_prefix, ws_frame


@pytest.mark.parametrize(
    ("size", "header"),
    [
        (0, "8100"),
        (1, "8101"),
        (125, "817d"),
        (126, "817e007e"),
        (65535, "817effff"),
        (65536, "817f0000000000010000"),
    ],
)
def test_text_frame_header_for_each_length_form(size: int, header: str) -> None:
    payload = b"x" * size

    frame = ws_frame(payload)

    assert frame[: len(header) // 2].hex() == header
    assert frame[len(header) // 2 :] == payload
    assert frame[1] & 0x80 == 0, "server frames are never masked (RFC 6455 5.1)"


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_frames_match_the_websockets_library(size: int, opcode: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    kind = Opcode.TEXT if opcode == TEXT else Opcode.BINARY

    expected = Frame(kind, payload).serialize(mask=False, extensions=[])

    assert ws_frame(payload, opcode) == expected


def test_binary_frame_uses_opcode_2() -> None:
    assert ws_frame(b"\x01\x02\x03", BINARY) == b"\x82\x03\x01\x02\x03"


def test_event_prefix() -> None:
    assert event_prefix("/") == b"42"
    assert event_prefix("/chat") == b"42/chat,"
    assert event_prefix("/chat", 2) == b"452-/chat,"
    assert event_prefix("/", 1) == b"451-"


def test_text_event_is_one_text_frame() -> None:
    args = b'["message:received",{"text":"hi"}]'

    assert event_frames("/chat", args) == ws_frame(b"42/chat," + args)


def test_binary_event_is_its_header_then_one_frame_per_attachment() -> None:
    args = (b'["message:received",{"a":{"_placeholder":true,"num":0},'
            b'"b":{"_placeholder":true,"num":1}}]')

    frames = event_frames("/chat", args, (b"\x00\x01", b""))

    assert frames == (
        ws_frame(b"452-/chat," + args) + ws_frame(b"\x00\x01", BINARY) + ws_frame(b"", BINARY)
    )
