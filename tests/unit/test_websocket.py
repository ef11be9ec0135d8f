"""RFC 6455 for the server: the opening handshake's checks and the reader of client frames
(masking, lengths, fragmentation, control frames, limits and the close codes they end with).
Client frames are built by the websockets library, so both sides of the framing are checked
against an implementation we did not write."""

from __future__ import annotations

import pytest
from websockets.frames import Close, Frame, Opcode

from gateway.http import Headers, Request, Response
from gateway.websocket import (
    CloseReceived,
    Event,
    Failure,
    FrameReader,
    Ping,
    accept_key,
    check_upgrade,
    close_frame,
    pong_frame,
    switching_protocols,
)

MAX = 1000


def client(opcode: Opcode, payload: bytes = b"", fin: bool = True) -> bytes:
    return Frame(opcode, payload, fin).serialize(mask=True, extensions=[])


def raw(first: int, payload: bytes = b"x") -> bytes:
    """A frame websockets would refuse to build, with an all-zero mask (payload as is)."""
    assert len(payload) < 126
    return bytes([first, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


def text(value: str, fin: bool = True) -> bytes:
    return client(Opcode.TEXT, value.encode(), fin)


def read(*frames: bytes, max_size: int = MAX) -> list[Event]:
    return FrameReader(max_size).feed(b"".join(frames))


def failure(*frames: bytes, max_size: int = MAX) -> int:
    reader = FrameReader(max_size)
    *_, last = reader.feed(b"".join(frames))
    assert isinstance(last, Failure), last
    assert reader.done and reader.feed(text("after")) == []
    return last.code


# --- the opening handshake ----------------------------------------------------------------


def test_accept_key_matches_the_rfc_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


HANDSHAKE = [("Host", "gw"), ("Upgrade", "websocket"), ("Connection", "keep-alive, Upgrade"),
             ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")]


def upgrade(replace: dict[str, str | None] | None = None, method: str = "GET",
            version: str = "1.1") -> str | Response:
    headers = Headers()
    changes = replace or {}
    for name, value in HANDSHAKE:
        if name not in changes:
            headers.add(name, value)
    for name, new in changes.items():
        if new is not None:
            headers.add(name, new)
    return check_upgrade(Request(method, "/socket.io/", headers, http_version=version))


def status(answer: str | Response) -> int:
    return answer.status if isinstance(answer, Response) else 101


def test_a_valid_handshake_gets_its_accept_value_and_a_101() -> None:
    assert upgrade() == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert upgrade({"Upgrade": "WebSocket"}) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    response = switching_protocols("abc")
    assert response.status == 101
    assert ("Sec-WebSocket-Accept", "abc") in response.headers
    assert ("Upgrade", "websocket") in response.headers


def test_no_websocket_upgrade_is_the_400_the_gateway_always_gave() -> None:
    for answer in (upgrade({"Upgrade": None}), upgrade({"Upgrade": "h2c"})):
        assert isinstance(answer, Response) and answer.status == 400
        assert answer.body == b"expected a WebSocket upgrade\n"


@pytest.mark.parametrize(("changes", "expected"), [
    ({"Connection": None}, 426),
    ({"Connection": "keep-alive"}, 426),
    ({"Sec-WebSocket-Version": "8"}, 426),
    ({"Sec-WebSocket-Version": None}, 426),
    ({"Sec-WebSocket-Key": None}, 400),
    ({"Sec-WebSocket-Key": "not base64!"}, 400),
    ({"Sec-WebSocket-Key": "c2hvcnQ="}, 400),  # 5 bytes, not 16
])
def test_handshake_refusals(changes: dict[str, str | None], expected: int) -> None:
    assert status(upgrade(changes)) == expected


def test_a_426_for_the_version_names_the_one_spoken() -> None:
    answer = upgrade({"Sec-WebSocket-Version": "8"})

    assert isinstance(answer, Response) and ("Sec-WebSocket-Version", "13") in answer.headers


def test_two_keys_or_a_post_or_http_1_0_are_400() -> None:
    headers = Headers(HANDSHAKE)
    headers.add("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
    assert status(check_upgrade(Request("GET", "/", headers))) == 400
    assert status(upgrade(method="POST")) == 400
    assert status(upgrade(version="1.0")) == 400


# --- server frames --------------------------------------------------------------------------


def test_close_and_pong_frames_parse_back_with_websockets() -> None:
    assert close_frame(1012, "gateway draining") == b"\x88\x12" + Close(
        1012, "gateway draining").serialize()
    assert close_frame(1005) == b"\x88\x00"
    assert len(close_frame(1000, "é" * 100)) == 2 + 2 + 122  # cut at a character, <= 123
    assert pong_frame(b"abc") == b"\x8a\x03abc"


# --- the reader -------------------------------------------------------------------------------


def test_text_and_binary_messages() -> None:
    assert read(text("42[\"x\"]"), client(Opcode.BINARY, b"\x00\xff")) == ['42["x"]',
                                                                           b"\x00\xff"]


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, MAX * 100])
def test_each_length_form(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))

    assert read(client(Opcode.BINARY, payload), max_size=MAX * 100) == [payload]


def test_frames_split_anywhere_come_out_whole() -> None:
    data = text("hello") + client(Opcode.BINARY, b"x" * 300) + text("é")
    reader = FrameReader(MAX)

    events = [event for i in range(len(data)) for event in reader.feed(data[i:i + 1])]

    assert events == ["hello", b"x" * 300, "é"]


def test_fragments_are_reassembled_with_control_frames_between() -> None:
    events = read(text("he", fin=False), client(Opcode.PING, b"p"),
                  client(Opcode.CONT, b"ll", fin=False), client(Opcode.PONG, b"ignored"),
                  client(Opcode.CONT, b"o"))

    assert events == [Ping(b"p"), "hello"]


def test_utf8_may_be_split_across_fragments() -> None:
    encoded = "é".encode()

    assert read(client(Opcode.TEXT, encoded[:1], fin=False),
                client(Opcode.CONT, encoded[1:])) == ["é"]


def test_binary_fragments() -> None:
    assert read(client(Opcode.BINARY, b"a", fin=False), client(Opcode.CONT, b"b")) == [b"ab"]


def test_ping_payload_comes_back_for_the_pong() -> None:
    assert read(client(Opcode.PING, b"12345")) == [Ping(b"12345")]


@pytest.mark.parametrize(("frames", "why"), [
    ([Frame(Opcode.TEXT, b"x").serialize(mask=False, extensions=[])], "unmasked"),
    ([raw(0x81 | 0x40)], "reserved bit 1 (compression was not agreed)"),
    ([raw(0x81 | 0x10)], "reserved bit 3"),
    ([client(Opcode.CONT, b"x")], "continuation without a start"),
    ([text("a", fin=False), text("b")], "a new message inside a fragmented one"),
    ([raw(0x09)], "fragmented control frame"),
    ([bytes([0x89, 0xFE, 0, 126]) + b"\0\0\0\0" + b"x" * 126], "control frame over 125"),
    ([raw(0x83)], "opcode 3"),
    ([raw(0x8B)], "opcode 11"),
    ([raw(0x88, b"\x03")], "a one-byte close payload"),
    ([client(Opcode.CLOSE, (999).to_bytes(2, "big"))], "close code 999"),
    ([client(Opcode.CLOSE, (1005).to_bytes(2, "big"))], "close code 1005 on the wire"),
    ([client(Opcode.CLOSE, (1006).to_bytes(2, "big"))], "close code 1006 on the wire"),
    ([client(Opcode.CLOSE, (2000).to_bytes(2, "big"))], "close code 2000"),
])
def test_protocol_errors_are_1002(frames: list[bytes], why: str) -> None:
    assert failure(*frames) == 1002, why


def test_a_frame_over_the_limit_is_1009_from_its_header_alone() -> None:
    header = client(Opcode.TEXT, b"x" * (MAX + 1))[:8]  # 2 + 2 length bytes + 4 mask bytes

    assert failure(header) == 1009


def test_fragments_over_the_limit_together_are_1009() -> None:
    assert failure(client(Opcode.BINARY, b"x" * 600, fin=False),
                   client(Opcode.CONT, b"x" * 401)) == 1009


def test_a_message_at_the_limit_is_read() -> None:
    assert read(client(Opcode.BINARY, b"x" * 600, fin=False),
                client(Opcode.CONT, b"x" * 400)) == [b"x" * MAX]


@pytest.mark.parametrize("payload", [b"\xff\xfe", b"\xed\xa0\x80", "é".encode()[:1]])
def test_invalid_utf8_text_is_1007(payload: bytes) -> None:
    assert failure(client(Opcode.TEXT, payload)) == 1007


def test_invalid_utf8_in_a_close_reason_is_1007() -> None:
    assert failure(client(Opcode.CLOSE, b"\x03\xe8\xff")) == 1007


@pytest.mark.parametrize(("payload", "expected"), [
    (b"", CloseReceived(1005, "")),
    (Close(1000, "bye").serialize(), CloseReceived(1000, "bye")),
    (Close(1001, "").serialize(), CloseReceived(1001, "")),
    (Close(4000, "app").serialize(), CloseReceived(4000, "app")),
    (Close(3000, "").serialize(), CloseReceived(3000, "")),
])
def test_the_peer_close(payload: bytes, expected: CloseReceived) -> None:
    reader = FrameReader(MAX)

    assert reader.feed(client(Opcode.CLOSE, payload) + text("ignored")) == [expected]
    assert reader.done and reader.feed(text("later")) == []


def test_messages_before_a_failure_still_come_out() -> None:
    assert read(text("a"), client(Opcode.CONT, b"x"))[0] == "a"
