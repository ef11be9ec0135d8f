"""Rendezvous ownership: every replica computes the same owner, and a replica leaving moves
only the keys it owned."""

from __future__ import annotations

from presence.events import Event, RoomChange, RoomCount, Typing, UserStatus
from presence.ownership import Owners, event_key, owner, run_key

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


# ---- the replica set and the re-announce window (Owners) ---------------------------------

ROOM = "/chat room:a"


def joins(n: int) -> list[Event]:
    return [RoomChange(ROOM, f"user{i}", "joined") for i in range(n)]


def test_a_lone_replica_announces_everything() -> None:
    owners = Owners("a", window=6.0)
    owners.seen("a", 0.0)

    assert owners.mine(joins(5), 1.0) == joins(5)


def test_two_replicas_split_the_events_between_them() -> None:
    a, b = Owners("a", 6.0), Owners("b", 6.0)
    for owners in (a, b):
        owners.seen("a", 0.0)
        owners.seen("b", 0.0)

    mine_a, mine_b = a.mine(joins(50), 1.0), b.mine(joins(50), 1.0)

    assert mine_a and mine_b
    assert sorted(mine_a + mine_b, key=str) == sorted(joins(50), key=str)


def test_what_nobody_owned_goes_out_when_the_first_replica_appears() -> None:
    owners = Owners("a", 6.0)

    assert owners.mine(joins(3), 1.0) == []
    assert owners.seen("a", 2.0) == joins(3)
    assert owners.seen("a", 3.0) == []


def test_a_dead_replicas_events_since_its_last_beat_come_back() -> None:
    owners = Owners("a", window=6.0)
    owners.seen("a", 0.0)
    owners.seen("b", 0.0)
    early = owners.mine(joins(40), 0.5)  # before b's last beat
    owners.seen("b", 1.0)
    owners.mine(joins(40), 2.0)

    again = owners.gone("b", died=True)

    theirs = [e for e in joins(40) if owner(event_key(e), {"a", "b"}) == "b"]
    assert again == theirs  # the 2.0 batch only: b announced the earlier ones
    assert early and owners.replicas == {"a"}


def test_a_replica_that_left_hands_over_nothing() -> None:
    owners = Owners("a", window=6.0)
    owners.seen("a", 0.0)
    owners.seen("b", 0.0)
    owners.mine(joins(40), 1.0)

    assert owners.gone("b", died=False) == []


def test_events_older_than_the_window_are_forgotten() -> None:
    owners = Owners("a", window=6.0)
    owners.seen("a", 0.0)
    owners.seen("b", 0.0)
    owners.mine(joins(40), 1.0)
    late = [RoomChange(ROOM, f"late{i}", "joined") for i in range(40)]
    owners.mine(late, 20.0)  # the 1.0 batch is past the window now

    again = owners.gone("b", died=True)

    assert again == [e for e in late if owner(event_key(e), {"a", "b"}) == "b"]


def test_nobody_owns_a_key_while_no_replica_is_known() -> None:
    owners = Owners("a", 6.0)
    assert not owners.owns(run_key("gw", "b1"))
    owners.seen("a", 0.0)
    assert owners.owns(run_key("gw", "b1"))
