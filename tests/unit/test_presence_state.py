"""Presence as pure state: per-connection records in, per-user diffs out, no flapping within
the grace, typing with a TTL, thinned announcements for big rooms (merge and restore across
replicas: ``test_presence_state_replicas.py``)."""

from __future__ import annotations

from itertools import pairwise

from presence.config import PresenceConfig
from presence.events import Event, RoomChange, RoomCount, Typing, UserStatus
from presence.state import Conn, PresenceState
from tests.support.presence_sockets import Sockets

GRACE = 5.0
TTL = 5.0


def state(big_room: int = 100, summary_interval: float = 2.0) -> Sockets:
    config = PresenceConfig(GRACE, TTL, big_room=big_room, summary_interval=summary_interval)
    return Sockets(PresenceState(config))


def online(state: Sockets, user: str, gateway: str, conn: str, room: str, now: float) -> None:
    state.connect(gateway, conn, user, now)
    state.join(gateway, conn, room, now)


# ---- user status ---------------------------------------------------------------------------


def test_first_connection_is_online_at_once_and_second_tab_is_silent() -> None:
    s = state()

    assert s.connect("gw1", "c1", "alice", 0.0) == [UserStatus("alice", "online")]
    assert s.connect("gw1", "c2", "alice", 1.0) == []
    assert s.state.online_count() == 1


def test_closing_one_of_two_tabs_keeps_the_user_online_without_events() -> None:
    s = state()
    s.connect("gw1", "c1", "alice", 0.0)
    s.connect("gw2", "c2", "alice", 0.0)

    assert s.disconnect("gw1", "c1", 10.0) == []
    assert s.state.next_deadline() is None
    assert s.state.tick(100.0) == []
    assert s.state.online_count() == 1


def test_reconnect_within_the_grace_produces_no_events() -> None:
    s = state()
    s.connect("gw1", "c1", "alice", 0.0)

    assert s.disconnect("gw1", "c1", 10.0) == []
    assert s.state.next_deadline() == 10.0 + GRACE
    assert s.state.tick(14.0) == []
    assert s.connect("gw1", "c2", "alice", 14.5) == []
    assert s.state.tick(100.0) == []
    assert s.state.next_deadline() is None
    assert s.state.online_count() == 1


def test_offline_only_after_the_grace() -> None:
    s = state()
    s.connect("gw1", "c1", "alice", 0.0)
    s.disconnect("gw1", "c1", 10.0)

    assert s.state.tick(14.99) == []
    assert s.state.online_count() == 1  # still announced online during the grace
    assert s.state.tick(15.0) == [UserStatus("alice", "offline")]
    assert s.state.online_count() == 0
    assert s.connect("gw1", "c3", "alice", 20.0) == [UserStatus("alice", "online")]


def test_zero_grace_is_offline_as_soon_as_the_close_is_merged() -> None:
    s = Sockets(PresenceState(PresenceConfig(grace=0.0)))
    s.connect("gw1", "c1", "alice", 0.0)

    assert s.disconnect("gw1", "c1", 1.0) == [UserStatus("alice", "offline")]
    assert s.state.next_deadline() is None


def test_records_older_than_the_one_held_change_nothing() -> None:
    s = PresenceState(PresenceConfig(grace=GRACE))
    closed = Conn("alice", frozenset({"r"}), alive=False, stamp=2.0, seq=3)
    s.merge({("gw1", "c1"): Conn("alice", frozenset({"r"}), stamp=1.0, seq=2)}, 1.0)
    s.merge({("gw1", "c1"): closed}, 2.0)

    late = {("gw1", "c1"): Conn("alice", frozenset({"r", "x"}), stamp=1.5, seq=2)}
    assert s.merge(late, 3.0) == []
    assert s.members("x") == {}
    assert s.merge({("gw1", "c1"): closed}, 3.0) == []  # a redelivery is idempotent


# ---- rooms ---------------------------------------------------------------------------------


def test_join_is_per_user_not_per_tab() -> None:
    s = state()
    s.connect("gw1", "c1", "alice", 0.0)
    s.connect("gw1", "c2", "alice", 0.0)

    joined = s.join("gw1", "c1", "lobby", 1.0)
    assert joined == [RoomChange("lobby", "alice", "joined"), UserStatus("alice", "online")]
    assert joined[1].rooms == {"lobby"}  # online reaches the rooms once the user has one
    assert s.join("gw1", "c2", "lobby", 1.0) == []
    assert s.state.members("lobby") == {"alice": 2}
    assert s.leave("gw1", "c1", "lobby", 2.0) == []
    assert s.state.tick(50.0) == []
    assert s.state.members("lobby") == {"alice": 1}


def test_left_after_the_grace_and_rejoin_within_it_is_silent() -> None:
    s = state()
    online(s, "alice", "gw1", "c1", "lobby", 0.0)

    assert s.leave("gw1", "c1", "lobby", 10.0) == []
    assert s.state.members("lobby") == {"alice": 0}
    assert s.join("gw1", "c1", "lobby", 12.0) == []
    assert s.state.tick(30.0) == []

    s.leave("gw1", "c1", "lobby", 40.0)
    assert s.state.tick(45.0) == [RoomChange("lobby", "alice", "left")]
    assert s.state.members("lobby") == {}
    s.disconnect("gw1", "c1", 50.0)
    [offline] = s.state.tick(50.0 + GRACE)
    assert isinstance(offline, UserStatus) and offline.rooms == set()  # in no room any more


def test_last_tab_closing_goes_offline_then_leaves_in_that_order() -> None:
    s = state()
    online(s, "alice", "gw1", "c1", "lobby", 0.0)
    s.disconnect("gw1", "c1", 10.0)

    assert s.state.tick(15.0) == [
        UserStatus("alice", "offline"),
        RoomChange("lobby", "alice", "left"),
    ]


# ---- gateway death -------------------------------------------------------------------------


def test_gateway_down_without_reconnect_goes_offline_after_the_grace() -> None:
    s = state()
    online(s, "alice", "gw1", "c1", "lobby", 0.0)
    online(s, "bob", "gw1", "c2", "lobby", 0.0)
    online(s, "carol", "gw2", "c3", "lobby", 0.0)

    assert s.state.gateway_down("gw1", 10.0) == []
    assert s.state.tick(14.0) == []
    assert s.state.tick(15.0) == [
        UserStatus("alice", "offline"),
        UserStatus("bob", "offline"),
        RoomChange("lobby", "alice", "left"),
        RoomChange("lobby", "bob", "left"),
    ]
    assert s.state.members("lobby") == {"carol": 1}


def test_gateway_down_with_reconnect_elsewhere_is_silent() -> None:
    s = state()
    online(s, "alice", "gw1", "c1", "lobby", 0.0)
    online(s, "bob", "gw1", "c2", "lobby", 0.0)

    assert s.state.gateway_down("gw1", 10.0) == []
    online(s, "alice", "gw2", "c9", "lobby", 12.0)  # alice reconnects, bob does not

    assert s.state.tick(100.0) == [UserStatus("bob", "offline"),
                                   RoomChange("lobby", "bob", "left")]
    assert s.state.online_count() == 1
    assert s.state.members("lobby") == {"alice": 1}


def test_gateway_comes_back_with_its_first_connection() -> None:
    s = state()
    s.connect("gw1", "c1", "alice", 0.0)
    s.state.gateway_down("gw1", 1.0)

    assert s.connect("gw1", "c2", "alice", 2.0) == []
    assert s.state.tick(100.0) == []
    assert s.state.gateway_down("gw1", 101.0) == []
    assert s.state.tick(106.0) == [UserStatus("alice", "offline")]


def test_drain_moving_every_user_produces_no_events() -> None:
    s = state(big_room=1000)  # per-user events stay on, so any that leaked would show
    for i in range(1000):
        online(s, f"u{i}", "gw1", f"c{i}", "lobby", 0.0)
    s.state.tick(0.0)

    events: list[Event] = []
    for i in range(1000):
        events += s.disconnect("gw1", f"c{i}", 10.0 + i / 1000)
        events += s.connect("gw2", f"d{i}", f"u{i}", 10.5 + i / 1000)
        events += s.join("gw2", f"d{i}", "lobby", 10.5 + i / 1000)
    events += s.state.tick(100.0)

    assert events == []
    assert len(s.state.members("lobby")) == 1000


# ---- typing --------------------------------------------------------------------------------


def test_typing_starts_once_and_expires_after_the_ttl() -> None:
    s = state()
    online(s, "alice", "gw1", "c1", "lobby", 0.0)

    assert s.state.typing_start("lobby", "alice", 1.0) == [Typing("lobby", "alice", True)]
    assert s.state.typing_start("lobby", "alice", 2.0) == []  # refresh, coalesced
    assert s.state.next_deadline() == 2.0 + TTL
    assert s.state.tick(6.5) == []
    assert s.state.tick(7.0) == [Typing("lobby", "alice", False)]
    assert s.state.next_deadline() is None
    assert s.state.typing_start("lobby", "alice", 8.0) == [Typing("lobby", "alice", True)]


def test_explicit_typing_stop() -> None:
    s = state()
    online(s, "alice", "gw1", "c1", "lobby", 0.0)
    s.state.typing_start("lobby", "alice", 1.0)

    assert s.state.typing_stop("lobby", "alice", 2.0) == [Typing("lobby", "alice", False)]
    assert s.state.typing_stop("lobby", "alice", 2.5) == []
    assert s.state.tick(100.0) == []


def test_leaving_the_room_stops_typing_at_once() -> None:
    s = state()
    online(s, "alice", "gw1", "c1", "lobby", 0.0)
    s.state.typing_start("lobby", "alice", 1.0)

    assert s.leave("gw1", "c1", "lobby", 2.0) == [Typing("lobby", "alice", False)]
    assert s.state.tick(7.0) == [RoomChange("lobby", "alice", "left")]


def test_disconnect_stops_typing_and_non_members_cannot_type() -> None:
    s = state()
    online(s, "alice", "gw1", "c1", "lobby", 0.0)
    s.state.typing_start("lobby", "alice", 1.0)

    assert s.state.typing_start("other", "alice", 1.0) == []
    assert s.disconnect("gw1", "c1", 2.0) == [Typing("lobby", "alice", False)]


# ---- big rooms -----------------------------------------------------------------------------


def test_big_rooms_get_at_most_one_summary_per_interval() -> None:
    s = state(big_room=3, summary_interval=2.0)
    events: list[Event] = []
    for i in range(3):
        events += s.connect("gw1", f"c{i}", f"u{i}", 0.0)
        events += s.join("gw1", f"c{i}", "big", 0.0)
    assert [e for e in events if isinstance(e, RoomChange)] == [
        RoomChange("big", f"u{i}", "joined") for i in range(3)
    ]

    summaries: list[tuple[float, int]] = []
    for step in range(40):  # a join every 0.1 s for 4 s
        now = 1.0 + step * 0.1
        user = f"v{step}"
        batch = s.connect("gw1", user, user, now) + s.join("gw1", user, "big", now)
        batch += s.state.tick(now)
        assert not [e for e in batch if isinstance(e, RoomChange)]
        summaries += [(now, e.count) for e in batch if isinstance(e, RoomCount)]
    summaries += [(t, e.count) for t in (5.0, 10.0) for e in s.state.tick(t)
                  if isinstance(e, RoomCount)]

    assert summaries[0] == (1.0, 4)  # the change crossing the threshold, at once
    times = [t for t, _ in summaries]
    assert all(b - a >= 2.0 - 1e-9 for a, b in pairwise(times))
    assert summaries[-1][1] == 43  # the last summary carries the final count
    assert len(summaries) == 3


def test_big_room_leaves_are_summarised_and_small_rooms_resume_per_user_events() -> None:
    s = state(big_room=2, summary_interval=2.0)
    for i in range(3):
        online(s, f"u{i}", "gw1", f"c{i}", "big", 0.0)
    s.state.tick(0.0)

    s.leave("gw1", "c0", "big", 10.0)
    assert s.state.tick(15.0) == [RoomCount("big", 2)]  # back down to the threshold: a summary
    s.leave("gw1", "c1", "big", 20.0)
    assert s.state.tick(25.0) == [RoomChange("big", "u1", "left")]


def test_a_big_room_does_not_hear_its_members_online_and_offline() -> None:
    s = state(big_room=2)
    for i in range(2):
        online(s, f"u{i}", "gw1", f"c{i}", "big", 0.0)
    s.connect("gw1", "c9", "carol", 1.0)  # online, to no room yet
    events = s.join("gw1", "c9", "small", 1.0) + s.join("gw1", "c9", "big", 1.0)

    statuses = [e for e in events if isinstance(e, UserStatus)]
    assert statuses == [UserStatus("carol", "online")]
    assert statuses[0].rooms == {"small"}  # not "big": three members, over the threshold

    s.disconnect("gw1", "c9", 2.0)
    gone = [e for e in s.state.tick(2.0 + GRACE) if isinstance(e, UserStatus)]
    assert gone == [UserStatus("carol", "offline")]
    assert gone[0].rooms == {"small"}


# ---- deadlines and audiences --------------------------------------------------------------


def test_next_deadline_is_the_earliest_pending_item_and_skips_cancelled_ones() -> None:
    s = state()
    assert s.state.next_deadline() is None
    online(s, "alice", "gw1", "c1", "lobby", 0.0)
    s.state.typing_start("lobby", "alice", 1.0)  # due 6
    s.connect("gw1", "c2", "bob", 0.0)
    s.disconnect("gw1", "c2", 3.0)  # due 8

    assert s.state.next_deadline() == 6.0
    s.state.typing_stop("lobby", "alice", 2.0)
    assert s.state.next_deadline() == 8.0
    s.connect("gw2", "c3", "bob", 4.0)
    assert s.state.next_deadline() is None


def test_offline_reaches_the_rooms_the_user_was_in_before_the_lefts() -> None:
    s = state()
    online(s, "alice", "gw1", "c1", "lobby", 0.0)
    s.disconnect("gw1", "c1", 1.0)
    events = s.state.tick(100.0)
    assert events == [UserStatus("alice", "offline"), RoomChange("lobby", "alice", "left")]
    assert isinstance(events[0], UserStatus) and events[0].rooms == {"lobby"}
