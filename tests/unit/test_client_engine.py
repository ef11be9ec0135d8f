"""The client's Engine.IO/Socket.IO receive side as pure state: the open packet, the
ping-driven liveness deadline, server packets (CONNECT_ERROR included) and binary reassembly."""

from __future__ import annotations

import pytest

from client.engine import (
    Broken,
    EngineCore,
    Opened,
    OpenParams,
    Pinged,
    Received,
    engine_url,
    parse_server_packet,
)
from shared.protocol.packets import InvalidPacket, Packet, PacketType

OPEN = '0{"sid":"abc","upgrades":[],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}'


def opened(now: float = 10.0) -> EngineCore:
    core = EngineCore()
    assert core.receive(OPEN, now) == Opened(OpenParams("abc", 0.3, 0.2, 1_000_000))
    return core


@pytest.mark.parametrize(("base", "url"), [
    ("http://127.0.0.1:8001", "ws://127.0.0.1:8001/socket.io/?EIO=4&transport=websocket"),
    ("https://chat.example/", "wss://chat.example/socket.io/?EIO=4&transport=websocket"),
    ("ws://h:1", "ws://h:1/socket.io/?EIO=4&transport=websocket"),
])
def test_engine_url(base: str, url: str) -> None:
    assert engine_url(base) == url


def test_engine_url_refuses_other_schemes() -> None:
    with pytest.raises(ValueError):
        engine_url("ftp://h")


def test_the_first_frame_must_be_the_open_packet() -> None:
    assert isinstance(EngineCore().receive('40{"sid":"x"}', 0.0), Broken)
    assert isinstance(EngineCore().receive("0{not json", 0.0), Broken)


def test_only_pings_move_the_liveness_deadline() -> None:
    core = opened(now=10.0)
    assert core.deadline == pytest.approx(10.5)

    assert isinstance(core.receive('42/chat,["x",{}]', 10.4), Received)
    assert core.deadline == pytest.approx(10.5)  # other traffic proves nothing
    assert core.expired(10.5)

    assert core.receive("2", 10.45) == Pinged()
    assert core.deadline == pytest.approx(10.95)
    assert not core.expired(10.9)


def test_connect_reply_event_and_ack_are_received() -> None:
    core = opened()

    assert core.receive('40/chat,{"sid":"s1","pid":"p1"}', 10.0) == Received(
        Packet(PacketType.CONNECT, "/chat", {"sid": "s1", "pid": "p1"}))
    assert core.receive('42/chat,["message:received",{"seq":1},"1"]', 10.0) == Received(
        Packet(PacketType.EVENT, "/chat", ["message:received", {"seq": 1}, "1"]))
    assert core.receive('43/chat,7[{"ok":true}]', 10.0) == Received(
        Packet(PacketType.ACK, "/chat", [{"ok": True}], 7))
    assert core.receive("41/chat,", 10.0) == Received(Packet(PacketType.DISCONNECT, "/chat"))


def test_connect_error_is_parsed_although_the_shared_codec_is_server_side() -> None:
    body = '{"message":"unauthorized","data":{"code":"unauthorized"}}'

    assert parse_server_packet("4/chat," + body) == Packet(
        PacketType.CONNECT_ERROR, "/chat",
        {"message": "unauthorized", "data": {"code": "unauthorized"}})
    assert parse_server_packet('4/x,{"message":"Invalid namespace"}') == Packet(
        PacketType.CONNECT_ERROR, "/x", {"message": "Invalid namespace"})
    assert isinstance(parse_server_packet("4/chat,[1]"), InvalidPacket)


def test_binary_packets_are_reassembled() -> None:
    core = opened()

    header = '451-/chat,["message:received",{"attachment":{"_placeholder":true,"num":0}}]'
    assert core.receive(header, 10.0) is None
    assert core.receive(b"\x00\x01", 10.0) == Received(Packet(
        PacketType.EVENT, "/chat", ["message:received", {"attachment": b"\x00\x01"}],
        attachments=1))
    assert core.receive('461-/chat,3[{"blob":{"_placeholder":true,"num":0}}]', 10.0) is None
    assert core.receive(b"z", 10.0) == Received(
        Packet(PacketType.ACK, "/chat", [{"blob": b"z"}], 3, attachments=1))


@pytest.mark.parametrize("frame", ["1", "42/chat,[", b"stray binary", "9"])
def test_broken_frames_end_the_transport(frame: str | bytes) -> None:
    assert isinstance(opened().receive(frame, 10.0), Broken)


def test_text_between_a_header_and_its_attachments_breaks_the_transport() -> None:
    core = opened()
    core.receive('451-/chat,["x",{"_placeholder":true,"num":0}]', 10.0)

    assert isinstance(core.receive('42/chat,["y"]', 10.0), Broken)


def test_noop_and_stray_pong_are_ignored() -> None:
    core = opened()

    assert core.receive("6", 10.0) is None
    assert core.receive("3", 10.0) is None
