"""Fuzzing the pure codec: ``parse_packet``, ``parse_frame`` and ``BinaryAssembler`` are total.

Two kinds of property. The ``strategy`` ones draw every input from hypothesis strategies built
from wire fragments (they shrink well but cost about a millisecond an input). The ``bulk``
ones give most of the volume: hypothesis draws a seed per example (``st.randoms``) and
:class:`~tests.security.strategies.Garbage` builds a batch of inputs from the same vocabulary.
One input is one ``parse_packet`` / ``parse_frame`` call or one frame given to the assembler;
each property asserts how many it fed, and ``COUNTS["codec"]`` totals them in the summary.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.protocol.engineio import EioPacket, EioType, InvalidFrame, parse_frame
from shared.protocol.events import RESERVED
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
from tests.security.strategies import (
    COUNTS,
    PACKET_TEXT,
    SEEDS,
    STRUCTURED_TEXT,
    TEXT_WITH_SURROGATES,
    Garbage,
)

ENCODABLE_DEPTH = 250
"""orjson writes at most 254 levels of nesting but reads 1024; see the xfail below."""


def fuzz(examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def depth(value: Any) -> int:
    """Nesting depth, iteratively (the values can be 1024 deep)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, list):
            stack.extend((child, level + 1) for child in item)
        elif isinstance(item, dict):
            stack.extend((child, level + 1) for child in item.values())
    return deepest


def check_packet(text: str, result: Packet | InvalidPacket) -> None:
    """What a parse may return: a packet that obeys the payload rules, or a refusal."""
    if isinstance(result, InvalidPacket):
        assert isinstance(result.detail, str) and result.detail
        assert result.nsp is None or isinstance(result.nsp, str)
        assert result.id is None or 0 <= result.id < 10**MAX_ACK_ID_DIGITS
        return
    assert isinstance(result, Packet), (text, result)
    assert isinstance(result.type, PacketType)
    assert result.type is not PacketType.CONNECT_ERROR  # server to client only
    assert result.nsp.startswith("/") and len(result.nsp) <= MAX_NAMESPACE_LENGTH
    assert "," not in result.nsp and "?" not in result.nsp
    assert result.id is None or 0 <= result.id < 10**MAX_ACK_ID_DIGITS
    binary = result.type in (PacketType.BINARY_EVENT, PacketType.BINARY_ACK)
    assert 0 <= result.attachments <= (MAX_ATTACHMENTS if binary else 0)
    data = result.data
    if result.type is PacketType.CONNECT:
        assert data is None or isinstance(data, dict)
    elif result.type is PacketType.DISCONNECT:
        assert data is None
    elif result.type in (PacketType.ACK, PacketType.BINARY_ACK):
        assert result.id is not None and isinstance(data, list)
    else:
        assert isinstance(data, list) and data
        name = data[0]
        assert not isinstance(name, bool)
        assert isinstance(name, int | float) or (isinstance(name, str) and name not in RESERVED)


def check_round_trip(result: Packet | InvalidPacket) -> None:
    """A text packet the parser accepted is written back so that it parses the same."""
    if not isinstance(result, Packet) or result.type in (
            PacketType.BINARY_EVENT, PacketType.BINARY_ACK):
        return
    if depth(result.data) > ENCODABLE_DEPTH:
        return
    text, attachments = encode_packet(result)
    assert attachments == []
    assert parse_packet(text) == result, text


def parse_all(texts: list[str]) -> int:
    for text in texts:
        result = parse_packet(text)
        check_packet(text, result)
        check_round_trip(result)
    return len(texts)


def check_frame(frame: str | bytes) -> None:
    result = parse_frame(frame)
    if isinstance(result, InvalidFrame):
        assert isinstance(frame, str) and result.detail
        return
    assert isinstance(result, EioPacket) and isinstance(result.type, EioType)
    if isinstance(frame, bytes):
        assert result == EioPacket(EioType.MESSAGE, frame)
    elif frame[0] == "b":
        assert result.type is EioType.MESSAGE and isinstance(result.data, bytes)
        assert base64.b64decode(frame[1:]) == result.data
    else:
        assert result == EioPacket(EioType(int(frame[0])), frame[1:])
        if result.type is EioType.MESSAGE:
            assert isinstance(result.data, str)
            check_packet(result.data, parse_packet(result.data))


def assemble(packets: list[tuple[str, list[bytes]]]) -> int:
    """Headers and attachment frames in any counts on one assembler; returns inputs fed."""
    fed = 0
    assembler = BinaryAssembler()
    for header_text, frames in packets:
        if assembler.pending:
            assembler = BinaryAssembler()  # a connection would have been closed
        stray = BinaryAssembler().add(b"\x00")
        assert isinstance(stray, InvalidPacket) and stray.nsp is None
        header = parse_packet(header_text)
        fed += 1 + len(frames)
        check_packet(header_text, header)
        if not isinstance(header, Packet) or header.type not in (
                PacketType.BINARY_EVENT, PacketType.BINARY_ACK):
            continue
        outcome: Packet | InvalidPacket | None = assembler.start(header)
        for frame in frames:
            if outcome is not None:
                break
            outcome = assembler.add(frame)
        if outcome is None:
            assert assembler.pending
            continue
        assert not assembler.pending
        if isinstance(outcome, InvalidPacket):
            assert (outcome.nsp, outcome.id) == (header.nsp, header.id)
            continue
        plain = PacketType.EVENT if header.type is PacketType.BINARY_EVENT else PacketType.ACK
        assert (outcome.type, outcome.nsp, outcome.id) == (plain, header.nsp, header.id)
        assert not has_placeholder(outcome.data, header.attachments)
    return fed


def has_placeholder(value: Any, buffers: int) -> bool:
    """A placeholder that names a received attachment must have been replaced."""
    if isinstance(value, dict):
        if (value.get("_placeholder") is True and set(value) == {"_placeholder", "num"}
                and type(value["num"]) is int and 0 <= value["num"] < buffers):
            return True
        return any(has_placeholder(item, buffers) for item in value.values())
    if isinstance(value, list):
        return any(has_placeholder(item, buffers) for item in value)
    return False


# --- strategy-drawn inputs ------------------------------------------------------------------


@fuzz(400)
@given(st.lists(PACKET_TEXT, min_size=5, max_size=5))
def _strategy_packets(texts: list[str]) -> None:
    COUNTS["codec"] += parse_all(texts)


@fuzz(300)
@given(st.lists(st.one_of(STRUCTURED_TEXT, st.text(), TEXT_WITH_SURROGATES),
                min_size=5, max_size=5))
def _strategy_soup(texts: list[str]) -> None:
    COUNTS["codec"] += parse_all(texts)


@fuzz(300)
@given(st.lists(st.one_of(st.binary(max_size=64), st.text(), PACKET_TEXT.map(lambda t: "4" + t),
                          st.binary(max_size=48).map(lambda b: "b" + b.hex())),
                min_size=5, max_size=5))
def _strategy_frames(frames: list[str | bytes]) -> None:
    for frame in frames:
        check_frame(frame)
    COUNTS["codec"] += len(frames)


# --- bulk inputs from hypothesis-seeded generators --------------------------------------------

BULK = 200


@fuzz(250)
@given(SEEDS)
def _bulk_packets(rnd: random.Random) -> None:
    garbage = Garbage(rnd)
    COUNTS["codec"] += parse_all([garbage.socketio_text() for _ in range(BULK)])


@fuzz(80)
@given(SEEDS)
def _bulk_frames(rnd: random.Random) -> None:
    garbage = Garbage(rnd)
    for _ in range(BULK):
        roll = rnd.random()
        frame: str | bytes
        if roll < 0.2:
            frame = rnd.randbytes(rnd.randrange(40))
        elif roll < 0.3:
            frame = "b" + garbage.pick([base64.b64encode(rnd.randbytes(9)).decode(),
                                        garbage.text(), "====", "YQ", "YQ==\n", "\u0661"])
        elif roll < 0.8:
            frame = "4" + garbage.socketio_text()
        else:
            frame = garbage.pick([*"0123456789b", ""]) + garbage.soup()
        check_frame(frame)
    COUNTS["codec"] += BULK


@fuzz(60)
@given(SEEDS)
def _bulk_binary(rnd: random.Random) -> None:
    garbage = Garbage(rnd)
    packets = []
    for _ in range(BULK // 4):
        header = (garbage.pick(["5", "6"]) + garbage.pick([f"{rnd.randrange(12)}-", "1-", "2-"])
                  + garbage.pick(["", "/chat,"]) + garbage.pick(["", "1", "42"])
                  + garbage.json_fragment())
        frames = [rnd.randbytes(rnd.randrange(8)) for _ in range(rnd.randrange(4))]
        packets.append((header, frames))
    COUNTS["codec"] += assemble(packets)


def counted(run: Callable[[], None], at_least: int) -> None:
    before = COUNTS["codec"]
    run()
    fed = COUNTS["codec"] - before
    assert fed >= at_least, f"only {fed} inputs"


def test_parse_packet_is_total_on_strategy_drawn_packets() -> None:
    counted(_strategy_packets, 2_000)


def test_parse_packet_is_total_on_fragment_soup_and_surrogates() -> None:
    counted(_strategy_soup, 1_500)


def test_parse_frame_is_total_on_strategy_drawn_frames() -> None:
    counted(_strategy_frames, 1_500)


def test_parse_packet_is_total_in_bulk() -> None:
    counted(_bulk_packets, 50_000)


def test_parse_frame_is_total_in_bulk() -> None:
    counted(_bulk_frames, 16_000)


def test_binary_assembler_is_total_in_bulk() -> None:
    counted(_bulk_binary, 5_000)


@pytest.mark.parametrize("depth", [10, 60, 300, 1000])
def test_every_accepted_text_packet_can_be_written_back(depth: int) -> None:
    """Reading accepts no deeper JSON than writing can write back."""
    text = '2/chat,["note:add",{"room":"room:a","x":' + "[" * depth + "]" * depth + "}]"
    packet = parse_packet(text)
    if isinstance(packet, Packet):
        encode_packet(packet)
    else:
        assert depth > 60 and "deeper" in packet.detail
