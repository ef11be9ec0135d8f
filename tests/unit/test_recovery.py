"""Connection-state recovery as data: the recovery record, what a reconnecting client asks
for, and the replay it is owed."""

from __future__ import annotations

import orjson
import pytest

from gateway.actions import Restore
from gateway.recovery import MAX_PID_LENGTH, RecoveryRecord, replay_ranges, restore_request, trimmed
from shared.protocol.offsets import Offset


def record(**rooms: int) -> RecoveryRecord:
    return RecoveryRecord("alice", "/chat", "sid-1", dict(rooms))


# --- the session record ---------------------------------------------------------------------


@pytest.mark.parametrize("until", [0.0, 1_700_000_120.5])
@pytest.mark.parametrize("rooms", [{}, {"room:a": 0}, {"room:a": 12, "user:b@c": 3}])
def test_record_round_trip(rooms: dict[str, int], until: float) -> None:
    original = RecoveryRecord("alice", "/chat", "sid-1", rooms, until)

    decoded = RecoveryRecord.decode(original.encode())

    assert decoded == original


def test_record_is_versioned_json() -> None:
    data = orjson.loads(RecoveryRecord("alice", "/chat", "sid-1", {"r": 4}, 99.5).encode())

    assert data == {"v": 1, "user": "alice", "nsp": "/chat", "sid": "sid-1", "rooms": {"r": 4},
                    "until": 99.5}


def test_a_record_without_until_is_not_recoverable() -> None:
    raw = b'{"v":1,"user":"a","nsp":"/chat","sid":"s","rooms":{"r":2}}'

    decoded = RecoveryRecord.decode(raw)

    assert decoded == RecoveryRecord("a", "/chat", "s", {"r": 2}, 0.0)
    assert not decoded.recoverable(1.0)


def test_recoverable_until_the_deadline_inclusive() -> None:
    session = RecoveryRecord("a", "/chat", "s", {}, 100.0)

    assert session.recoverable(99.9)
    assert session.recoverable(100.0)
    assert not session.recoverable(100.1)


@pytest.mark.parametrize("raw", [
    None, b"", b"not json", b"[", b"null", b"12", b'"text"', b"[1,2]", b"{}",
    b'{"v":2,"user":"a","nsp":"/chat","sid":"s","rooms":{}}',
    b'{"user":"a","nsp":"/chat","sid":"s","rooms":{}}',
    b'{"v":1,"nsp":"/chat","sid":"s","rooms":{}}',
    b'{"v":1,"user":"a","sid":"s","rooms":{}}',
    b'{"v":1,"user":"a","nsp":"/chat","rooms":{}}',
    b'{"v":1,"user":"a","nsp":"/chat","sid":"s"}',
    b'{"v":1,"user":"a","nsp":"/chat","sid":"s","rooms":[]}',
    b'{"v":1,"user":"a","nsp":"/chat","sid":"s","rooms":{"r":"x"}}',
    b'{"v":1,"user":"a","nsp":"/chat","sid":"s","rooms":{"r":null}}',
    b'{"v":1,"user":"a","nsp":"/chat","sid":"s","rooms":{"r":[1]}}',
    b'{"v":1,"user":"a","nsp":"/chat","sid":"s","rooms":{},"until":"soon"}',
    b'{"v":1,"user":"a","nsp":"/chat","sid":"s","rooms":{},"until":null}',
    b'{"v":1,"user":"a","nsp":"/chat","sid":"s","rooms":{},"until":[1]}',
    b"\xff\xfe",
])
def test_record_decode_rejects_garbage_without_raising(raw: bytes | None) -> None:
    assert RecoveryRecord.decode(raw) is None


# --- replay ranges --------------------------------------------------------------------------


def test_without_an_offset_each_room_replays_from_where_it_was_joined() -> None:
    # socket.io#4888: the connection dropped before the first event, so no offset came back.
    ranges = replay_ranges(record(a=3, b=0), None, {"a": 9, "b": 4})

    assert ranges == {"a": (3, 9), "b": (0, 4)}


def test_with_an_offset_each_room_replays_from_the_frontier() -> None:
    ranges = replay_ranges(record(a=3, b=0), Offset(7), {"a": 9, "b": 12})

    assert ranges == {"a": (7, 9), "b": (7, 12)}


def test_lagging_rooms_replay_from_their_own_position() -> None:
    offset = Offset(20, {"a": 5, "c": 30})

    ranges = replay_ranges(record(a=0, b=0, c=0), offset, {"a": 25, "b": 25, "c": 40})

    assert ranges == {"a": (5, 25), "b": (20, 25), "c": (30, 40)}


def test_a_room_joined_after_the_offset_replays_from_where_it_was_joined() -> None:
    ranges = replay_ranges(record(a=2, late=15), Offset(10, {"late": 4}), {"a": 20, "late": 20})

    assert ranges == {"a": (10, 20), "late": (15, 20)}


def test_nothing_is_owed_when_the_room_did_not_move() -> None:
    ranges = replay_ranges(record(a=3), Offset(9), {"a": 8})

    assert ranges == {"a": (9, 9)}


def test_a_room_without_a_known_end_replays_nothing() -> None:
    ranges = replay_ranges(record(a=3), Offset(5), {})

    assert ranges == {"a": (5, 5)}


def test_only_the_recorded_rooms_are_replayed() -> None:
    ranges = replay_ranges(record(a=1), Offset(2, {"other": 0}), {"a": 4, "other": 9})

    assert ranges == {"a": (2, 4)}


# --- trimmed history ------------------------------------------------------------------------


@pytest.mark.parametrize(("ranges", "first_seq", "expected"), [
    ({"a": (0, 10)}, 1, False),
    ({"a": (3, 10)}, 4, False),  # the first message owed is still held
    ({"a": (3, 10)}, 5, True),  # message 4 is gone
    ({"a": (3, 3)}, 100, False),  # nothing owed, nothing lost
    ({"a": (50, 60), "b": (3, 60)}, 10, True),
    ({"a": (50, 60), "b": (9, 60)}, 10, False),
    ({}, 100, False),
])
def test_trimmed(ranges: dict[str, tuple[int, int]], first_seq: int, expected: bool) -> None:
    assert trimmed(ranges, first_seq) is expected


def test_a_restore_request_needs_a_string_pid_of_bounded_length() -> None:
    assert restore_request({"pid": "p1", "offset": "7"}) == Restore("p1", "7")
    assert restore_request({"pid": "p1"}) == Restore("p1", None)  # no event received yet
    assert restore_request({"pid": "p1", "offset": 7}) == Restore("p1", None)
    assert restore_request({"pid": "x" * MAX_PID_LENGTH}) is not None
    for pid in (None, 7, "", "x" * (MAX_PID_LENGTH + 1)):
        assert restore_request({"pid": pid, "offset": "7"}) is None
