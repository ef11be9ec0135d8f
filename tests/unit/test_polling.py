"""The polling transport's pure parts (payloads, frames back to packets, CORS) and its
channel's rules (one GET and one POST at a time, answers as soon as frames are written,
the close packet, the upgrade's hand-over), driven by plain calls on an event loop."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from gateway.channel import Channel
from gateway.cors import cors_headers, preflight_headers
from gateway.http import Response
from gateway.polling import PollingChannel, Prober
from gateway.polling_codec import decode_payload, encode_payload, unframe
from gateway.polling_forward import get_timeout_s, reply_headers
from gateway.websocket_protocol import WebSocketProtocol
from shared.protocol.frames import BINARY, ws_frame

# --- payloads ----------------------------------------------------------------------------------


def test_packets_are_joined_by_the_record_separator_and_binary_is_base64() -> None:
    assert encode_payload(["40", "2", b"\x00\xff"]) == b"40\x1e2\x1ebAP8="


@pytest.mark.parametrize("packets", [["4hello"], ["40/chat,{}", "3"], [b"\x01\x02", "451-[]"]])
def test_payloads_round_trip(packets: list[str | bytes]) -> None:
    assert decode_payload(encode_payload(packets)) == packets


@pytest.mark.parametrize("body", [b"", b"40\x1e", b"\x1e40", b"b!!!", b"4\xff\xfe"])
def test_bad_payloads_are_refused_not_raised(body: bytes) -> None:
    assert decode_payload(body) is None


def test_frames_come_apart_into_their_packets() -> None:
    big = "4" + "x" * 70_000
    data = ws_frame(b"42[]") + ws_frame(b"\x07" * 200, BINARY) + ws_frame(big.encode())
    assert unframe(data) == (["42[]", b"\x07" * 200, big], False)


def test_nothing_after_a_close_frame_counts() -> None:
    assert unframe(ws_frame(b"2") + b"\x88\x02\x03\xe8" + ws_frame(b"3")) == (["2"], True)


# --- CORS ----------------------------------------------------------------------------------------


def test_without_an_allow_list_any_origin_without_credentials() -> None:
    assert cors_headers("http://a.example", frozenset()) == (
        ("Access-Control-Allow-Origin", "*"),)


def test_a_listed_origin_is_echoed_with_credentials_never_a_star() -> None:
    headers = dict(cors_headers("http://a.example", frozenset({"http://a.example"})))
    assert headers == {"Access-Control-Allow-Origin": "http://a.example",
                       "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}


def test_an_unlisted_origin_gets_no_cors_grant() -> None:
    allowed = frozenset({"http://a.example"})
    assert cors_headers("http://b.example", allowed) == (("Vary", "Origin"),)
    assert preflight_headers("http://b.example", allowed, "content-type") == (
        ("Vary", "Origin"),)


def test_a_preflight_allows_the_methods_and_the_requested_headers() -> None:
    headers = dict(preflight_headers(None, frozenset(), "content-type, authorization"))
    assert headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    assert headers["Access-Control-Allow-Headers"] == "content-type, authorization"


# --- the channel ---------------------------------------------------------------------------------


class Handler:
    def __init__(self) -> None:
        self.received: list[str | bytes] = []
        self.gone = False
        self.switched: WebSocketProtocol | None = None

    def receive(self, message: str | bytes) -> None:
        self.received.append(message)

    def lost(self) -> None:
        self.gone = True

    def switch(self, ws: WebSocketProtocol) -> None:
        self.switched = ws


def channel_with_handler() -> tuple[PollingChannel, Handler, list[PollingChannel]]:
    gone: list[PollingChannel] = []
    channel = PollingChannel("sid-1", gone.append)
    handler = Handler()
    channel.handler = handler
    return channel, handler, gone


async def answer(result: Response | object) -> Response:
    if isinstance(result, Response):
        return result
    return await asyncio.wait_for(cast("asyncio.Future[Response]", result), 1)


async def test_a_parked_get_is_answered_by_the_next_write() -> None:
    channel, _, _ = channel_with_handler()
    pending = channel.get(())
    assert not isinstance(pending, Response)
    channel.transport.write(ws_frame(b"2") + ws_frame(b"42[\"x\"]"))
    response = await answer(pending)
    assert response.status == 200 and response.body == b'2\x1e42["x"]'
    assert ("Cache-Control", "no-store") in response.headers


async def test_buffered_packets_count_against_the_send_budget_until_polled() -> None:
    channel, _, _ = channel_with_handler()
    channel.transport.write(ws_frame(b"4" * 100))
    assert channel.transport.get_write_buffer_size() == 102
    await answer(channel.get(()))
    assert channel.transport.get_write_buffer_size() == 0


async def test_a_post_hands_every_packet_over_in_order_and_answers_ok() -> None:
    channel, handler, _ = channel_with_handler()
    response = await answer(channel.post(b"40/chat,\x1e3\x1ebAQI=", ()))
    assert response.body == b"ok"
    assert handler.received == ["40/chat,", "3", b"\x01\x02"]


async def test_a_paused_connection_holds_the_post_answer_until_it_reads_again() -> None:
    channel, _, _ = channel_with_handler()
    channel.pause_reading()
    pending = channel.post(b"3", ())
    assert not isinstance(pending, Response)
    assert (await answer(channel.post(b"3", ()))).status == 400  # an overlap ends it
    assert channel.closed


async def test_resuming_answers_the_held_post() -> None:
    channel, _, _ = channel_with_handler()
    channel.pause_reading()
    pending = channel.post(b"3", ())
    channel.resume_reading()
    assert (await answer(pending)).body == b"ok"


async def test_two_gets_at_once_end_the_session_with_a_close_packet() -> None:
    channel, handler, _ = channel_with_handler()
    first = channel.get(())
    second = await answer(channel.get(()))
    assert second.status == 400
    assert (await answer(first)).body == b"1"
    await asyncio.sleep(0)
    assert handler.gone


async def test_a_cancelled_get_ends_the_session() -> None:
    channel, handler, _ = channel_with_handler()
    pending = channel.get(())
    cast("asyncio.Future[Response]", pending).cancel()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert channel.closed and handler.gone


async def test_a_server_close_sends_the_close_packet_after_what_was_queued() -> None:
    channel, handler, _ = channel_with_handler()
    channel.transport.write(ws_frame(b"41/chat,"))
    channel.close(1012, "drain")
    assert (await answer(channel.get(()))).body == b"41/chat,\x1e1"
    await asyncio.sleep(0)
    assert handler.gone and channel.close_code == 1012
    assert (await answer(channel.post(b"3", ()))).status == 400


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def is_closing(self) -> bool:
        return False


async def test_the_upgrade_probes_then_moves_the_buffer_onto_the_websocket() -> None:
    channel, handler, _ = channel_with_handler()
    ws = WebSocketProtocol(1000, lambda _: handler)
    transport = FakeTransport()
    ws.transport = transport
    prober = Prober(channel, ws)
    pending = channel.get(())
    prober.receive("2probe")
    assert transport.written == [ws_frame(b"3probe")]
    assert (await answer(pending)).body == b"6"
    channel.transport.write(ws_frame(b"42[\"late\"]"))
    assert (await answer(channel.get(()))).body == b"6"  # no packet goes out while upgrading
    prober.receive("5")
    assert transport.written[-1] == ws_frame(b'42["late"]')
    assert handler.switched is ws and channel.upgraded
    assert (await answer(channel.get(()))).status == 400


async def test_anything_but_the_probe_fails_the_upgrade_and_polling_goes_on() -> None:
    channel, _, _ = channel_with_handler()
    ws = WebSocketProtocol(1000, lambda _: Handler())
    ws.transport = FakeTransport()
    prober = Prober(channel, ws)
    prober.receive("2probe")
    prober.receive("42[\"x\"]")
    assert not channel.upgrading and not channel.upgraded
    channel.transport.write(ws_frame(b"2"))
    assert (await answer(channel.get(()))).body == b"2"


def test_both_transports_are_channels() -> None:
    def accepts(channel: Channel) -> int | None:
        return channel.close_code

    assert accepts(WebSocketProtocol(10, lambda _: Handler())) is None


async def test_a_capped_answer_leaves_the_rest_for_the_next_poll() -> None:
    channel, _, _ = channel_with_handler()
    for n in range(5):
        channel.transport.write(ws_frame(b"4" + str(n).encode() * 40))
    first = await answer(channel.get((), limit=100))
    assert first.body.split(b"\x1e") == [b"4" + b"0" * 40, b"4" + b"1" * 40]
    rest = await answer(channel.get(()))
    assert [p[1:2] for p in rest.body.split(b"\x1e")] == [b"2", b"3", b"4"]


async def test_a_forwarded_poll_ends_when_its_client_goes_away_elsewhere() -> None:
    channel, handler, _ = channel_with_handler()
    pending = channel.get((), forwarded=True)
    assert not isinstance(pending, Response)
    channel.forwarded_get_cancelled()
    await asyncio.sleep(0)
    assert channel.closed and handler.gone


def test_a_forwarded_poll_outlasts_a_ping_and_answers_carry_their_status() -> None:
    assert get_timeout_s(25_000, 5_000) > 30
    assert reply_headers(Response(400, b"", (("Content-Type", "application/json"),))) == {
        "Sb-Status": "400", "Sb-Type": "application/json"}
