"""The gateway → presence notices: the wire codec (total on bad input), the gateway's pending
set (coalescing, bounded by sockets), and the emitter's linger (a socket gone within it is
never sent)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.presence_emitter import LINGER_S, PendingPresence, PresenceEmitter, packed
from shared.presence_wire import (
    GatewayBoot,
    SocketRecord,
    TypingNotice,
    decode,
    encode,
    pack,
    room_key,
    split_room_key,
    unpack,
)

ROOM = room_key("/chat", "room:a")


def test_every_notice_survives_a_round_trip() -> None:
    notices = [
        SocketRecord("gw-1", "b00t", "sid-1", "alice", frozenset({ROOM}), True, 3, 12.5),
        SocketRecord("gw-1", "b00t", "sid-1", "alice", frozenset(), False, 4, 13.0),
        TypingNotice(ROOM, "alice", True, 14.0),
        GatewayBoot("gw-1", "b00t", 1.0),
    ]
    for notice in notices:
        assert decode(encode(notice)) == notice


@pytest.mark.parametrize("raw", [
    b"", b"[]", b"null", b'{"t":"socket"}', b'{"t":"what","stamp":1}',
    b'{"t":"typing","room":"room:a","user":"u","active":true,"stamp":1}',  # no namespace
    b'{"t":"typing","room":"/chat x.>","user":"u","active":true,"stamp":1}',
    b'{"t":"typing","room":"/chat room:a","user":"","active":true,"stamp":1}',
    b'{"t":"typing","room":"/chat room:a","user":"u","active":1,"stamp":1}',
    b'{"t":"boot","gw":"a/b","boot":"x","stamp":1}',
    b'{"t":"boot","gw":"a","boot":"x","stamp":true}',
    b'{"t":"socket","gw":"g","boot":"b","conn":"c","user":"u","rooms":["nope"],'
    b'"alive":true,"seq":1,"stamp":1}',
    b'{"t":"socket","gw":"g","boot":"b","conn":"c","user":"u","rooms":[],'
    b'"alive":true,"seq":true,"stamp":1}',
])
def test_malformed_notices_decode_to_none(raw: bytes) -> None:
    assert decode(raw) is None


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
                    max_leaves=10)
NOTICE_LIKE = st.dictionaries(
    st.sampled_from(["t", "gw", "boot", "conn", "user", "rooms", "alive", "seq", "stamp",
                     "room", "active"]),
    st.sampled_from(["socket", "typing", "boot", ROOM, "g", ""]) | JSON)


@given(JSON | NOTICE_LIKE)
def test_decode_is_total(value: object) -> None:
    decode(json.dumps(value).encode())
    unpack(json.dumps(value).encode())


NOTICES = [
    SocketRecord("gw-1", "b00t", "sid-1", "alice", frozenset({ROOM}), True, 3, 12.5),
    TypingNotice(ROOM, "alice", True, 14.0),
    SocketRecord("gw-1", "b00t", "sid-2", "bob", frozenset(), False, 4, 13.0),
    GatewayBoot("gw-1", "b00t", 1.0),
]


def test_a_pack_unpacks_to_its_notices_in_order() -> None:
    assert unpack(pack([encode(n) for n in NOTICES])) == NOTICES


def test_a_lone_notice_unpacks_as_a_pack_of_one() -> None:
    assert unpack(encode(NOTICES[0])) == [NOTICES[0]]


def test_malformed_notices_in_a_pack_do_not_spoil_the_others() -> None:
    raw = b"[" + encode(NOTICES[0]) + b',{"t":"socket"},7,' + encode(NOTICES[1]) + b"]"

    assert unpack(raw) == [NOTICES[0], None, None, NOTICES[1]]
    assert unpack(b"not json") == [None]


def test_packs_keep_order_and_stay_under_the_byte_limit() -> None:
    many = [SocketRecord("gw-1", "b00t", f"sid-{n}", "alice", frozenset({ROOM}), True, n, 1.0)
            for n in range(10, 60)]  # all encode to the same length
    limit = 3 * len(encode(many[0])) + 4  # three notices, two commas, the brackets

    packs = packed(many, limit)

    assert [n for notices, _ in packs for n in notices] == many
    assert all(len(body) <= limit for _, body in packs)
    assert all(unpack(body) == notices for notices, body in packs)
    assert len(packs) == 17


def test_a_notice_over_the_limit_goes_alone() -> None:
    big, small = NOTICES[0], NOTICES[1]

    packs = packed([small, big, small], limit=len(encode(big)) - 1)

    assert [notices for notices, _ in packs] == [[small], [big], [small]]


def test_room_keys_split_back_and_refuse_what_is_not_a_room() -> None:
    assert split_room_key(ROOM) == ("/chat", "room:a")
    assert split_room_key("room:a") is None
    assert split_room_key("/chat room a") is None


def test_pending_keeps_one_record_per_socket_with_the_latest_rooms() -> None:
    pending = PendingPresence("gw", "boot")
    pending.socket("s1", "alice", [], True, 1.0)
    pending.socket("s1", "alice", [ROOM], True, 2.0)
    [record] = pending.take()
    assert isinstance(record, SocketRecord)
    assert (record.rooms, record.alive, record.seq) == (frozenset({ROOM}), True, 2)
    assert pending.take() == []


def test_a_socket_gone_before_its_first_record_left_is_never_sent() -> None:
    pending = PendingPresence("gw", "boot")
    pending.socket("s1", "alice", [ROOM], True, 1.0)
    pending.socket("s1", "alice", [], False, 1.1)
    assert len(pending) == 0 and pending.take() == []


def test_a_sent_socket_is_closed_with_a_newer_record() -> None:
    pending = PendingPresence("gw", "boot")
    pending.socket("s1", "alice", [ROOM], True, 1.0)
    pending.take()
    pending.socket("s1", "alice", [], False, 2.0)
    [record] = pending.take()
    assert isinstance(record, SocketRecord) and (record.alive, record.seq) == (False, 2)


def test_a_socket_recovered_under_its_old_id_gets_newer_records_than_its_close() -> None:
    pending = PendingPresence("gw", "boot")
    pending.socket("s1", "alice", [ROOM], True, 1.0)
    pending.take()
    pending.socket("s1", "alice", [], False, 2.0)
    [closed] = pending.take()
    pending.socket("s1", "alice", [ROOM], True, 3.0)  # recovery keeps the socket id
    [back] = pending.take()
    assert isinstance(closed, SocketRecord) and isinstance(back, SocketRecord)
    assert back.alive and back.seq > closed.seq


def test_failed_notices_come_back_unless_something_newer_replaced_them() -> None:
    pending = PendingPresence("gw", "boot")
    pending.boot_notice(0.0)
    pending.socket("s1", "alice", [ROOM], True, 1.0)
    pending.typing(ROOM, "alice", True, 1.0)
    taken = pending.take()
    assert [type(n) for n in taken] == [GatewayBoot, SocketRecord, TypingNotice]
    pending.socket("s1", "alice", [], True, 2.0)  # newer than the failed record
    pending.failed(taken)
    again = pending.take()
    records = [n for n in again if isinstance(n, SocketRecord)]
    assert [r.seq for r in records] == [2]
    assert any(isinstance(n, GatewayBoot) for n in again)
    assert any(isinstance(n, TypingNotice) for n in again)


def test_typing_notices_coalesce_per_room_and_user() -> None:
    pending = PendingPresence("gw", "boot")
    for at in range(5):
        pending.typing(ROOM, "alice", True, float(at))
    pending.typing(ROOM, "alice", False, 9.0)
    assert pending.take() == [TypingNotice(ROOM, "alice", False, 9.0)]


def test_take_respects_its_limit() -> None:
    pending = PendingPresence("gw", "boot")
    for n in range(10):
        pending.socket(f"s{n}", "u", [], True, 1.0)
    assert len(pending.take(4)) == 4 and len(pending) == 6


class RecordingStream:
    """Stands in for JetStream's publish: what the emitter sent, decoded."""

    def __init__(self) -> None:
        self.notices: list[object] = []

    async def publish(self, subject: str, body: bytes) -> None:
        self.notices.extend(unpack(body))


def chat_socket(sid: str, user: str) -> Any:
    return SimpleNamespace(nsp="/chat", sid=sid, identity=SimpleNamespace(sub=user),
                           rooms={"room:a"})


async def test_a_socket_gone_within_the_linger_never_reaches_presence() -> None:
    stream = RecordingStream()
    emitter = PresenceEmitter(cast(Any, stream), "sb.presence.events", "gw-1", "b00t",
                              frozenset({"/chat"}))
    emitter.start()
    brief, staying = chat_socket("sid-1", "alice"), chat_socket("sid-2", "bob")
    emitter.socket(brief, True)
    emitter.socket(staying, True)
    await asyncio.sleep(LINGER_S / 5)
    emitter.socket(brief, False)  # closed before the linger was over
    await asyncio.sleep(LINGER_S * 3)
    await emitter.close()

    records = [n for n in stream.notices if isinstance(n, SocketRecord)]
    assert [(r.conn, r.alive, r.rooms) for r in records] == [
        ("sid-2", True, frozenset({ROOM}))]
    assert any(isinstance(n, GatewayBoot) for n in stream.notices)
