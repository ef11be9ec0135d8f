"""Rendezvous ownership: every replica computes the same owner, and a replica leaving moves
only the keys it owned."""

from __future__ import annotations

from presence.ownership import event_key, owner
from presence.state import RoomChange, RoomCount, Typing, UserStatus

KEYS = [f"u\0user{n}" for n in range(2_000)]


def test_owner_does_not_depend_on_the_order_replicas_are_listed_in() -> None:
    replicas = ["a", "b", "c"]
    for key in KEYS[:200]:
        assert owner(key, replicas) == owner(key, list(reversed(replicas))) == owner(
            key, set(replicas))


def test_work_is_shared_roughly_evenly() -> None:
    counts: dict[str, int] = {}
    for key in KEYS:
        counts[owner(key, ["a", "b", "c"])] = counts.get(owner(key, ["a", "b", "c"]), 0) + 1
    assert set(counts) == {"a", "b", "c"}
    assert min(counts.values()) > len(KEYS) / 3 * 0.8


def test_a_leaving_replica_moves_only_its_own_keys() -> None:
    before = {key: owner(key, ["a", "b", "c"]) for key in KEYS}
    after = {key: owner(key, ["a", "b"]) for key in KEYS}
    moved = [key for key in KEYS if before[key] != after[key]]
    assert moved and all(before[key] == "c" for key in moved)


def test_one_members_events_share_a_key_and_a_users_status_has_its_own() -> None:
    room = "/chat room:a"
    assert event_key(RoomChange(room, "bob", "joined")) == event_key(Typing(room, "bob", True))
    assert event_key(UserStatus("bob", "online")) != event_key(RoomChange(room, "bob", "left"))
    assert event_key(RoomCount(room, 5)) != event_key(RoomCount("/chat room:b", 5))
