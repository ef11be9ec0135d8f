"""Socket.IO v5 packet codec: golden wire fixtures both ways, hostile input, reassembly.

The golden strings are frames captured against the reference server and clients
(socketio-notes.md section 2.2); they must parse to the listed fields and encode back to
exactly the same text, compact like ``JSON.stringify``.
"""

from __future__ import annotations

import random
import string
from typing import Any

import pytest

from shared.protocol.engineio import EioPacket, EioType, parse_frame
from shared.protocol.packets import (
    MAX_ACK_ID_DIGITS,
    MAX_ATTACHMENTS,
    MAX_NAMESPACE_LENGTH,
    BinaryAssembler,
    InvalidPacket,
    Packet,
    PacketType,
    encode_packet,
    parse_packet,
)
from tests.unit.wire_fixtures import fill_placeholders, socketio_cases

CASES = socketio_cases()
CLIENT_CASES = [case for case in CASES if "parse_error" not in case]
SERVER_ONLY_CASES = [case for case in CASES if "parse_error" in case]
BINARY_CASES = [case for case in CASES if "attachments_hex" in case]


def case_id(case: dict[str, Any]) -> str:
    return str(case["name"])


def socketio_text(frame: str) -> str:
    """The Socket.IO packet inside an Engine.IO ``message`` text frame."""
    eio = parse_frame(frame)
    assert isinstance(eio, EioPacket) and eio.type is EioType.MESSAGE
    assert isinstance(eio.data, str)
    return eio.data


def attachments_of(case: dict[str, Any]) -> list[bytes]:
    return [bytes.fromhex(blob) for blob in case.get("attachments_hex", [])]


def test_the_fixtures_cover_every_packet_type() -> None:
    assert {case["type"] for case in CASES} == {int(kind) for kind in PacketType}


# --- golden fixtures -----------------------------------------------------------------------


@pytest.mark.parametrize("case", CLIENT_CASES, ids=case_id)
def test_golden_frame_parses_to_its_fields(case: dict[str, Any]) -> None:
    packet = parse_packet(socketio_text(case["frame"]))

    assert packet == Packet(
        PacketType(case["type"]), case["nsp"], case["data"], case["id"], case["attachments"]
    )


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_golden_fields_encode_to_the_exact_frame(case: dict[str, Any]) -> None:
    kind = PacketType(case["type"])
    data = fill_placeholders(case["data"], attachments_of(case))
    if kind is PacketType.BINARY_EVENT:
        kind = PacketType.EVENT  # the encoder picks the binary type from the bytes it finds
    elif kind is PacketType.BINARY_ACK:
        kind = PacketType.ACK

    text, attachments = encode_packet(Packet(kind, case["nsp"], data, case["id"]))

    assert "4" + text == case.get("encodes_as", case["frame"])
    assert attachments == attachments_of(case)


@pytest.mark.parametrize("case", SERVER_ONLY_CASES, ids=case_id)
def test_server_only_packets_from_a_client_are_invalid(case: dict[str, Any]) -> None:
    assert parse_packet(socketio_text(case["frame"])) == InvalidPacket(case["parse_error"],
                                                                       case["nsp"])


@pytest.mark.parametrize("case", BINARY_CASES, ids=case_id)
def test_golden_binary_packet_reassembles_from_its_frames(case: dict[str, Any]) -> None:
    header = parse_packet(socketio_text(case["frame"]))
    assert isinstance(header, Packet)
    frames = attachments_of(case)
    assembler = BinaryAssembler()

    assert assembler.start(header) is None
    results = [assembler.add(frame) for frame in frames]

    assert results[:-1] == [None] * (len(frames) - 1)
    plain = PacketType.EVENT if header.type is PacketType.BINARY_EVENT else PacketType.ACK
    assert results[-1] == Packet(
        plain, case["nsp"], fill_placeholders(case["data"], frames), case["id"], len(frames)
    )
    assert not assembler.pending


def test_encoder_writes_compact_json_like_json_stringify() -> None:
    text, _ = encode_packet(Packet(PacketType.EVENT, "/chat", ["a", {"b": [1, None, True]}]))

    assert text == '2/chat,["a",{"b":[1,null,true]}]'


def test_encoder_turns_bytes_anywhere_into_a_binary_packet() -> None:
    text, attachments = encode_packet(
        Packet(PacketType.ACK, "/chat", [{"x": (b"\x01", bytearray(b"\x02"))}], 4)
    )

    assert text == (
        '62-/chat,4[{"x":[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]}]'
    )
    assert attachments == [b"\x01", b"\x02"]


def test_namespace_query_is_dropped_like_python_socketio() -> None:
    assert parse_packet('0/chat?token=abc,{"a":1}') == Packet(PacketType.CONNECT, "/chat", {"a": 1})


def test_limits_at_their_edges_are_accepted() -> None:
    nsp = "/" + "n" * (MAX_NAMESPACE_LENGTH - 1)
    ack_id = "9" * MAX_ACK_ID_DIGITS
    holders = ",".join(f'{{"_placeholder":true,"num":{n}}}' for n in range(MAX_ATTACHMENTS))

    assert isinstance(parse_packet(f"0{nsp},"), Packet)
    assert parse_packet(f'3{ack_id}["x"]') == Packet(PacketType.ACK, "/", ["x"], int(ack_id))
    packet = parse_packet(f'5{MAX_ATTACHMENTS}-["x",{holders}]')
    assert isinstance(packet, Packet) and packet.attachments == MAX_ATTACHMENTS


# --- hostile input -------------------------------------------------------------------------

HOSTILE: list[tuple[str, str]] = [
    ("empty", ""),
    ("unknown type 7", '7["x"]'),
    ("unknown type 9", "9"),
    ("engine.io prefix left on", '42["x"]'),
    ("letter type", 'x["x"]'),
    ("arabic-indic digit type", '\u0662["x"]'),
    ("garbage", "\x00\x01\xff garbage"),
    ("only punctuation", "2,,,,[[[{"),
    ("truncated JSON", '2["hello","wor'),
    ("truncated object", '0{"token":'),
    ("trailing garbage", '2["x"]trailing'),
    ("NUL after JSON", '2["x"]\x00'),
    ("NaN", "2[NaN]"),
    ("single quotes", "2['x']"),
    ("CONNECT with array", '0["token"]'),
    ("CONNECT with string", '0"token"'),
    ("CONNECT with bool", "0/chat,true"),
    ("DISCONNECT with payload", '1/chat,{"x":1}'),
    ("EVENT with object", '2{"event":"x"}'),
    ("EVENT with empty array", "2[]"),
    ("EVENT with string", '2"x"'),
    ("EVENT without payload", "2/chat,"),
    ("EVENT with ack id only", "212"),
    ("EVENT name null", "2[null]"),
    ("EVENT name bool", "2[true]"),
    ("EVENT name object", '2[{"x":1}]'),
    ("EVENT name array", '2[["x"]]'),
    ("reserved name connect", '2["connect"]'),
    ("reserved name connect_error", '2/chat,["connect_error",{}]'),
    ("reserved name disconnect", '2/chat,1["disconnect"]'),
    ("reserved name disconnecting", '2["disconnecting"]'),
    ("reserved name newListener", '2["newListener"]'),
    ("reserved name removeListener", '2["removeListener"]'),
    ("ACK without id", '3["x"]'),
    ("ACK without id, namespace", '3/chat,["x"]'),
    ("ACK with object", '31{"x":1}'),
    ("ACK without payload", "31"),
    ("BINARY_ACK without id", '61-[{"_placeholder":true,"num":0}]'),
    ("CONNECT_ERROR from client", '4{"message":"x"}'),
    ("CONNECT_ERROR from client, namespace", '4/chat,{"message":"x"}'),
    ("huge ack id", '2' + "9" * 40 + '["x"]'),
    ("ack id one digit too long", "2" + "1" * (MAX_ACK_ID_DIGITS + 1) + '["x"]'),
    ("ack id of a million digits", "3" + "7" * 1_000_000 + "[]"),
    ("11 attachments", '511-["x"]'),
    ("99 attachments", '699-1[]'),
    ("attachment count of 10000 digits", "5" + "9" * 10_000 + '-["x"]'),
    ("binary without N- header", '5["x"]'),
    ("binary, dash but no count", '5-["x"]'),
    ("binary, letter count", '5a-["x"]'),
    ("binary, negative count", '5-1-["x"]'),
    ("binary, count with space", '5 1-["x"]'),
    ("binary, non-ASCII digit count", '5\u0661-["x"]'),
    ("binary, bare type", "6"),
    ("binary, dash only in JSON", '5["a-b"]'),
    ("binary, namespace before count", '5/chat,1-["x"]'),
    ("deep nesting, 100k [", "2" + "[" * 100_000),
    ("deep nesting, 100k balanced", '2["x",' + "[" * 100_000 + "]" * 100_000 + "]"),
    ("deep nesting, objects", '2["x",' + '{"a":' * 5_000 + "1" + "}" * 5_000 + "]"),
    ("namespace one over the limit", "0/" + "n" * MAX_NAMESPACE_LENGTH + ","),
    ("namespace of a megabyte", "2/" + "n" * 1_000_000 + ',["x"]'),
    ("escaped lone high surrogate", r'2["\ud800"]'),
    ("escaped lone low surrogate", r'2["x",{"k":"\udfff"}]'),
    ("escaped surrogates reversed", r'2["\udc00\ud800"]'),
    ("raw lone surrogate", '2["\ud800"]'),
    ("number overflows a double", '2["x",1e400]'),
    ("negative number overflows a double", '2["x",-1e400]'),
    ("Infinity literal", '2["x",Infinity]'),
    ("event name overflows a double", "2[1e999]"),
]

ACCEPTED_ODDITIES: list[tuple[str, str]] = [
    ("integer beyond 64 bits", '2["x",123456789012345678901234567890]'),
    ("negative integer beyond 64 bits", '2["x",-123456789012345678901234567890]'),
    ("tiny float underflows to zero", '2["x",1e-400]'),
    ("largest double", '2["x",1.7976931348623157e308]'),
    ("numeric event name", "2[1.5]"),
    ("digits after a namespace are an ack id, even on CONNECT", "0/chat,42"),
    ("raw lone surrogate in a namespace (websockets never hands one over)", '2/\udfff,["x"]'),
    ("deep but within the payload depth limit", '2["x",' + "[" * 60 + "]" * 60 + "]"),
]


@pytest.mark.parametrize(("why", "text"), HOSTILE, ids=[why for why, _ in HOSTILE])
def test_hostile_input_is_an_invalid_packet_never_an_exception(why: str, text: str) -> None:
    result = parse_packet(text)

    assert isinstance(result, InvalidPacket), why
    assert result.detail


@pytest.mark.parametrize(
    ("why", "text"), ACCEPTED_ODDITIES, ids=[why for why, _ in ACCEPTED_ODDITIES]
)
def test_odd_but_valid_json_parses(why: str, text: str) -> None:
    assert isinstance(parse_packet(text), Packet), why


def test_random_input_never_raises() -> None:
    """Property: for any text, parse_packet returns a Packet or an InvalidPacket."""
    rng = random.Random(20261125)
    alphabet = (
        list("0123456789-/,[]{}\":?\\ .eE+") + list(string.ascii_letters)
        + ["_placeholder", "num", "true", "null", "\ud800", "\udfff", "\u00e9", "\U0001f600",
            "\x00", "\x1e", "\u0661", '"connect"']
    )
    golden = [socketio_text(case["frame"]) for case in CASES]
    checked = 0
    for _ in range(2000):
        length = rng.randrange(0, 40)
        text = "".join(rng.choice(alphabet) for _ in range(length))
        checked += _parses_or_refuses(text)
    for _ in range(2000):
        chars = list(rng.choice(golden))
        for _ in range(rng.randrange(1, 5)):
            position = rng.randrange(len(chars) + 1)
            operation = rng.randrange(3)
            if operation == 0:
                chars.insert(position, rng.choice(alphabet))
            elif chars:
                index = min(position, len(chars) - 1)
                if operation == 1:
                    del chars[index]
                else:
                    chars[index] = rng.choice(alphabet)
        checked += _parses_or_refuses("".join(chars))
    for _ in range(1000):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 30)))
        checked += _parses_or_refuses(blob.decode("utf-8", "surrogateescape"))
        checked += _parses_or_refuses(blob.decode("latin-1"))
    assert checked == 6000


def _parses_or_refuses(text: str) -> int:
    result = parse_packet(text)
    assert isinstance(result, Packet | InvalidPacket), repr(text)
    if isinstance(result, Packet) and result.attachments:
        assembler = BinaryAssembler()
        finished = assembler.start(result)
        for _ in range(result.attachments):
            finished = assembler.add(b"\x00")
        assert isinstance(finished, Packet | InvalidPacket), repr(text)
    return 1


# --- BinaryAssembler -----------------------------------------------------------------------


def header(text: str) -> Packet:
    packet = parse_packet(text)
    assert isinstance(packet, Packet), packet
    return packet


def test_one_attachment_is_put_in_its_place() -> None:
    assembler = BinaryAssembler()

    assert assembler.start(header('51-/chat,["up",{"_placeholder":true,"num":0}]')) is None
    assert assembler.pending

    assert assembler.add(b"\xde\xad") == Packet(PacketType.EVENT, "/chat", ["up", b"\xde\xad"],
                                                None, 1)
    assert not assembler.pending


def test_two_attachments_fill_placeholders_by_number_not_position() -> None:
    assembler = BinaryAssembler()
    assembler.start(header('62-5[{"_placeholder":true,"num":1},{"_placeholder":true,"num":0}]'))

    assert assembler.add(b"first") is None
    assert assembler.add(b"second") == Packet(PacketType.ACK, "/", [b"second", b"first"], 5, 2)


def test_nested_placeholders_are_reassembled() -> None:
    assembler = BinaryAssembler()
    assembler.start(header(
        '52-["x",{"a":[{"b":{"_placeholder":true,"num":0}}],"c":{"_placeholder":true,"num":1}}]'
    ))
    assembler.add(b"A")

    assert assembler.add(b"C") == Packet(
        PacketType.EVENT, "/", ["x", {"a": [{"b": b"A"}], "c": b"C"}], None, 2
    )


def test_a_header_without_attachments_completes_at_once() -> None:
    assert BinaryAssembler().start(header('50-["x",1]')) == Packet(
        PacketType.EVENT, "/", ["x", 1], None, 0
    )


def test_a_lookalike_with_extra_keys_is_not_a_placeholder() -> None:
    lookalike = {"_placeholder": True, "num": 0, "extra": 1}
    assembler = BinaryAssembler()
    assembler.start(header('51-["x",{"_placeholder":true,"num":0,"extra":1}]'))

    assert assembler.add(b"z") == Packet(PacketType.EVENT, "/", ["x", lookalike], None, 1)


@pytest.mark.parametrize(
    "num", ["1", "-1", "10", '"0"', "true", "0.0", "null"], ids=lambda num: f"num={num}"
)
def test_placeholder_number_out_of_range_or_not_an_int_is_invalid(num: str) -> None:
    assembler = BinaryAssembler()
    assembler.start(header(f'51-["x",{{"_placeholder":true,"num":{num}}}]'))

    assert isinstance(assembler.add(b"only one"), InvalidPacket)
    assert not assembler.pending


def test_placeholder_in_a_header_announcing_none_is_invalid() -> None:
    result = BinaryAssembler().start(header('50-["x",{"_placeholder":true,"num":0}]'))

    assert isinstance(result, InvalidPacket)


def test_add_with_nothing_pending_is_invalid() -> None:
    assembler = BinaryAssembler()

    assert isinstance(assembler.add(b"stray"), InvalidPacket)


def test_add_after_completion_is_invalid() -> None:
    assembler = BinaryAssembler()
    assembler.start(header('51-["x",{"_placeholder":true,"num":0}]'))
    assembler.add(b"1")

    assert isinstance(assembler.add(b"2"), InvalidPacket)


def test_start_replaces_an_unfinished_header() -> None:
    assembler = BinaryAssembler()
    assembler.start(header('52-["old",{"_placeholder":true,"num":0}]'))
    assembler.add(b"stale")
    assembler.start(header('51-["new",{"_placeholder":true,"num":0}]'))

    assert assembler.add(b"fresh") == Packet(PacketType.EVENT, "/", ["new", b"fresh"], None, 1)


def test_deeply_nested_packets_are_refused_not_raised() -> None:
    for depth in (65, 300, 1000):  # orjson reads up to 1023 levels but writes only ~254
        text = '51-["x",' + "[" * depth + "]" * depth + ',{"_placeholder":true,"num":0}]'
        refused = parse_packet(text)
        assert isinstance(refused, InvalidPacket) and "deeper" in refused.detail
