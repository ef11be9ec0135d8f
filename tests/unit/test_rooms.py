"""Local room membership says exactly when a room gains its first member or loses its last."""

from __future__ import annotations

from gateway.rooms import RoomRegistry

CHAT_A = ("/chat", "room:a")
CHAT_B = ("/chat", "room:b")
LIVE_A = ("/live-updates", "room:a")


def test_first_add_reports_first_member() -> None:
    rooms: RoomRegistry[str] = RoomRegistry()

    assert rooms.add(CHAT_A, "m1") is True
    assert rooms.add(CHAT_A, "m2") is False
    assert rooms.add(CHAT_A, "m1") is False  # adding twice is not a new first member


def test_last_remove_reports_empty() -> None:
    rooms: RoomRegistry[str] = RoomRegistry()
    rooms.add(CHAT_A, "m1")
    rooms.add(CHAT_A, "m2")

    assert rooms.remove(CHAT_A, "m1") is False
    assert CHAT_A in rooms
    assert rooms.remove(CHAT_A, "m2") is True
    assert CHAT_A not in rooms
    assert len(rooms) == 0


def test_removing_a_non_member_or_from_an_unknown_room_is_not_last() -> None:
    rooms: RoomRegistry[str] = RoomRegistry()
    rooms.add(CHAT_A, "m1")

    assert rooms.remove(CHAT_A, "stranger") is False
    assert rooms.remove(CHAT_B, "m1") is False
    assert rooms.remove(CHAT_A, "m1") is True
    assert rooms.remove(CHAT_A, "m1") is False  # already gone: not "last" a second time


def test_same_room_name_in_two_namespaces_is_two_rooms() -> None:
    rooms: RoomRegistry[str] = RoomRegistry()

    assert rooms.add(CHAT_A, "m1") is True
    assert rooms.add(LIVE_A, "m1") is True
    assert len(rooms) == 2
    assert rooms.remove(CHAT_A, "m1") is True
    assert LIVE_A in rooms


def test_members_in_join_order_and_a_copy() -> None:
    rooms: RoomRegistry[str] = RoomRegistry()
    for member in ["c", "a", "b", "a"]:
        rooms.add(CHAT_A, member)

    members = rooms.members(CHAT_A)
    members.clear()

    assert rooms.members(CHAT_A) == ["c", "a", "b"]
    assert rooms.members(CHAT_B) == []


def test_room_comes_back_after_emptying() -> None:
    rooms: RoomRegistry[str] = RoomRegistry()
    rooms.add(CHAT_A, "m1")
    rooms.remove(CHAT_A, "m1")

    assert rooms.add(CHAT_A, "m2") is True
