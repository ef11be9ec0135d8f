"""Presence frames: the Socket.IO events as the contract names them, one encoding per event,
to every room of its audience and never to a key that is not a room."""

from __future__ import annotations

from typing import Any

import orjson

from presence.events import Event, RoomChange, RoomCount, Typing, UserStatus
from presence.frames import frames, update_kind
from shared.presence_wire import room_key

A = room_key("/chat", "room:a")
B = room_key("/chat", "room:b")


def decoded(event: Event) -> list[tuple[str, str, list[Any]]]:
    return [(nsp, room, orjson.loads(body)) for nsp, room, body in frames(event)]


def test_a_status_goes_to_every_room_of_its_audience_as_the_same_bytes() -> None:
    out = frames(UserStatus("alice", "online", frozenset({B, A})))

    assert [(nsp, room) for nsp, room, _ in out] == [("/chat", "room:a"), ("/chat", "room:b")]
    assert out[0][2] is out[1][2]
    assert orjson.loads(out[0][2]) == ["presence:update", {"user": "alice", "status": "online"}]


def test_a_status_without_an_audience_is_not_sent() -> None:
    assert frames(UserStatus("alice", "offline")) == []


def test_room_changes_counts_and_typing_name_the_room_without_its_namespace() -> None:
    assert decoded(RoomChange(A, "bob", "left")) == [
        ("/chat", "room:a", ["presence:update", {"room": "room:a", "user": "bob",
                                                 "status": "left"}])]
    assert decoded(RoomCount(A, 120)) == [
        ("/chat", "room:a", ["presence:update", {"room": "room:a", "count": 120}])]
    assert decoded(Typing(A, "bob", True)) == [
        ("/chat", "room:a", ["typing:start", {"room": "room:a", "user": "bob"}])]
    assert decoded(Typing(A, "bob", False))[0][2][0] == "typing:stop"


def test_frames_are_compact_json() -> None:
    [(_, _, body)] = frames(RoomCount(A, 3))
    assert b" " not in body


def test_a_key_that_is_not_a_room_gets_no_frame() -> None:
    assert frames(RoomChange("no-namespace", "bob", "joined")) == []
    assert [room for _, room, _ in frames(UserStatus("bob", "online",
                                                     frozenset({"bad key", A})))] == ["room:a"]


def test_update_kinds_match_the_metric_labels() -> None:
    assert [update_kind(e) for e in (UserStatus("u", "online"), UserStatus("u", "offline"),
                                     RoomChange(A, "u", "joined"), RoomChange(A, "u", "left"),
                                     RoomCount(A, 1), Typing(A, "u", True))] == [
        "online", "offline", "joined", "left", "count", "typing"]
