"""``room:presence`` answers: members sorted and capped with an exact count, typed errors for
bad requests, and ``unavailable`` until the replica has restored the store."""

from __future__ import annotations

import pytest

from presence.query import members_answer
from presence.state import Conn, PresenceState
from shared.presence_wire import room_key

ROOM = room_key("/chat", "room:a")


def state_with(*users: str) -> PresenceState:
    state = PresenceState()
    records = {("gw", f"c-{user}"): Conn(user, frozenset({ROOM}), stamp=1.0) for user in users}
    state.merge(records, 1.0)
    return state


def test_members_are_sorted_and_capped_with_the_exact_count() -> None:
    answer = members_answer(b'{"namespace":"/chat","room":"room:a"}',
                            state_with("carol", "alice", "bob"), True, 2)

    assert answer == {"ok": True, "room": "room:a", "users": ["alice", "bob"], "count": 3,
                      "truncated": True}


def test_the_namespace_defaults_to_chat_and_an_empty_room_is_empty() -> None:
    answer = members_answer(b'{"room":"room:z"}', state_with("alice"), True, 10)

    assert answer == {"ok": True, "room": "room:z", "users": [], "count": 0,
                      "truncated": False}


@pytest.mark.parametrize("raw", [
    b"not json", b"[]", b'{"namespace":"/live-updates","room":"room:a"}',
    b'{"namespace":7,"room":"room:a"}', b'{"room":"bad room"}', b'{"room":""}', b"{}",
])
def test_bad_requests_get_bad_request(raw: bytes) -> None:
    answer = members_answer(raw, state_with("alice"), True, 10)

    assert answer["ok"] is False and answer["error"]["code"] == "bad_request"


def test_a_replica_still_restoring_is_unavailable() -> None:
    answer = members_answer(b'{"room":"room:a"}', state_with("alice"), False, 10)

    assert answer["error"]["code"] == "unavailable"
