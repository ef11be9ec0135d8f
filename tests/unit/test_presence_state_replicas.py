"""Presence state across replicas: merge keeps the newest record per socket whatever the order
views meet in, departures count their grace from when they happened, a restore announces
nobody, and tombstones outlive the replication lag (then go)."""

from __future__ import annotations

from presence.config import PresenceConfig
from presence.events import RoomChange, UserStatus
from presence.state import Conn, PresenceState
from tests.support.presence_sockets import Sockets
from tests.unit.test_presence_state import GRACE, online, state


def test_merge_of_two_views_takes_the_newest_record_per_connection() -> None:
    a, b = state(), state()
    online(a, "alice", "gw1", "c1", "lobby", 0.0)
    b.merge_from(a, 0.5)
    online(b, "bob", "gw2", "c2", "lobby", 1.0)
    b.disconnect("gw1", "c1", 2.0)  # b saw alice's close; a did not

    events = a.merge_from(b, 3.0)

    assert events == [RoomChange("lobby", "bob", "joined"), UserStatus("bob", "online")]
    assert a.state.tick(6.99) == []
    assert a.state.tick(7.0) == [UserStatus("alice", "offline"),
                                 RoomChange("lobby", "alice", "left")]

    # The stale "open" record in an old view cannot resurrect the closed connection.
    stale = state()
    online(stale, "alice", "gw1", "c1", "lobby", 0.0)
    assert a.merge_from(stale, 8.0) == []
    b.state.tick(8.0)
    assert a.state.members("lobby") == b.state.members("lobby") == {"bob": 1}
    assert a.state.online_count() == b.state.online_count() == 1


def test_merge_is_symmetric_and_idempotent() -> None:
    a, b = state(), state()
    online(a, "alice", "gw1", "c1", "lobby", 0.0)
    online(b, "bob", "gw2", "c2", "lobby", 0.0)

    a.merge_from(b, 1.0)
    b.merge_from(a, 1.0)

    assert a.records == b.records
    assert a.state.members("lobby") == b.state.members("lobby") == {"alice": 1, "bob": 1}
    assert a.merge_from(b, 2.0) == []


def test_merge_departure_counts_the_grace_from_when_it_happened() -> None:
    a, b = state(), state()
    a.connect("gw1", "c1", "alice", 0.0)
    b.merge_from(a, 0.0)
    b.disconnect("gw1", "c1", 10.0)

    assert a.merge_from(b, 20.0) == [UserStatus("alice", "offline")]


def test_merge_accepts_a_plain_snapshot() -> None:
    s = PresenceState()
    records = {("gw1", "c1"): Conn("alice", frozenset({"lobby"}), stamp=1.0)}

    events = s.merge(records, 2.0)
    assert events == [RoomChange("lobby", "alice", "joined"), UserStatus("alice", "online")]
    assert isinstance(events[1], UserStatus) and events[1].rooms == {"lobby"}


def test_restore_announces_nobody_but_keeps_pending_departures() -> None:
    old = state()
    online(old, "alice", "gw1", "c1", "lobby", 0.0)
    online(old, "bob", "gw1", "c2", "lobby", 0.0)
    online(old, "carol", "gw1", "c3", "lobby", 0.0)
    old.disconnect("gw1", "c2", 8.0)  # bob is within his grace when the replica restarts
    old.disconnect("gw1", "c3", 1.0)  # carol's offline was already due (and sent)
    old.state.tick(6.0)

    new = PresenceState.restore(old.records, 9.0, PresenceConfig(grace=GRACE))

    assert new.online_count() == 2  # alice, and bob within his grace
    assert new.members("lobby") == {"alice": 1, "bob": 0}
    assert new.next_deadline() == 13.0
    assert new.tick(13.0) == [UserStatus("bob", "offline"), RoomChange("lobby", "bob", "left")]


def test_tombstones_are_pruned_after_their_ttl() -> None:
    """Until then a stale "open" record cannot bring a closed socket back; after it, the
    tombstone is forgotten (which is why the TTL must cover the replication lag)."""
    s = Sockets(PresenceState(PresenceConfig(grace=1.0, tombstone_ttl=10.0)))
    s.connect("gw1", "c1", "alice", 0.0)
    s.disconnect("gw1", "c1", 1.0)
    s.state.tick(2.0)
    stale = {("gw1", "c1"): Conn("alice", stamp=0.5, seq=0)}

    assert s.state.merge(stale, 3.0) == []
    s.state.tick(20.0)
    assert s.state.merge(stale, 20.0) == [UserStatus("alice", "online")]
