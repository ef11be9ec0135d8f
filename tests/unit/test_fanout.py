"""The fan-out on an in-memory bus: logged messages reach every local member once and in log
order with ``seq``/``prev`` and the recovery offset; holds, floors and replays; gap repair
and the tail check after a NATS disconnect.

Nothing here waits on time: the feed task is let run with a bounded number of event-loop
turns (:func:`settle`), and the memory broker never suspends, so a few turns always suffice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gateway.broker import BrokerUnavailable, Delivery, Sink, Stored
from gateway.delivery import Member
from gateway.fanout import Fanout, Replayed, TooLarge
from gateway.feed import REPAIR_LIMIT
from gateway.memory_broker import MemoryBroker, MemoryBus
from shared.metrics import GatewayMetrics
from shared.protocol.offsets import Offset, parse_offset
from tests.support.members import body, events, member, texts, unframe

CHAT = "/chat"
LIVE = "/live-updates"
DURABLE = frozenset({CHAT, "/notifications"})


class TapBroker(MemoryBroker):
    """A memory broker that can redeliver and can fail its log reads."""

    def __init__(self, bus: MemoryBus) -> None:
        super().__init__(bus)
        self.sink: Sink | None = None
        self.failing_reads = 0
        self.reads: list[tuple[str, int, int]] = []

    def attach(self, sink: Sink) -> None:
        self.sink = sink
        super().attach(sink)

    async def read(self, nsp: str, room: str, after: int, upto: int, limit: int) -> list[Stored]:
        if self.failing_reads:
            self.failing_reads -= 1
            raise BrokerUnavailable("log read timed out")
        self.reads.append((room, after, upto))
        return await super().read(nsp, room, after, upto, limit)


def received(room: str, text: str, seq: int, prev: int, *offset: str) -> list[Any]:
    """A ``message:received`` event as a member gets it."""
    message = {"seq": seq, "prev": prev, "room": room, "id": f"id-{text}", "text": text}
    return ["message:received", message, *offset]


async def settle(turns: int = 50) -> None:
    """Let the feed tasks run: yields to the event loop a bounded number of times."""
    for _ in range(turns):
        await asyncio.sleep(0)


@dataclass
class Gateway:
    bus: MemoryBus
    broker: TapBroker
    other: MemoryBroker  # another gateway of the cluster, publishing
    fanout: Fanout
    registry: CollectorRegistry

    async def publish(self, room: str, text: str, nsp: str = CHAT, logged: bool = True) -> int:
        result = await self.other.publish(nsp, room, body(room, text), msg_id=f"id-{text}",
                                          logged=logged)
        return result.seq or 0

    def lose(self, room: str, text: str) -> int:
        """A message stored in the log whose live copy never reached this gateway."""
        seq, _, _ = self.bus.log(CHAT).append(room, body(room, text), f"id-{text}")
        return seq

    async def join(self, m: Member, *rooms: str, nsp: str = CHAT) -> list[int]:
        return [await self.fanout.join((nsp, room), m) for room in rooms]

    def counter(self, name: str, nsp: str = CHAT) -> float:
        value = self.registry.get_sample_value(f"switchboard_gateway_{name}_total",
                                               {"namespace": nsp})
        return value or 0.0


@pytest.fixture
async def gw() -> AsyncIterator[Gateway]:
    bus = MemoryBus(DURABLE)
    broker = TapBroker(bus)
    registry = CollectorRegistry()
    fanout = Fanout(broker, GatewayMetrics(registry), batch=2, durable=DURABLE)
    try:
        yield Gateway(bus, broker, MemoryBroker(bus), fanout, registry)
    finally:
        tasks = [feed._task for feed in fanout._feeds.values() if feed._task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# --- live delivery ----------------------------------------------------------------------------


async def test_every_member_gets_each_logged_message_once_in_order(gw: Gateway) -> None:
    a, b, c = member(), member(), member()
    await gw.join(a, "r1")
    await gw.join(b, "r1")
    await gw.join(c, "r2")

    s1 = await gw.publish("r1", "one")
    s2 = await gw.publish("r2", "two")
    s3 = await gw.publish("r1", "three")
    await settle()

    for m in (a, b):
        assert events(m) == [received("r1", "one", s1, 0, str(s1)),
                             received("r1", "three", s3, s1, str(s3))]
    assert events(c) == [received("r2", "two", s2, 0, str(s2))]


async def test_the_wire_form_of_a_logged_message(gw: Gateway) -> None:
    m = member()
    await gw.join(m, "r1")

    await gw.publish("r1", "hi")
    await settle()

    assert [unframe(frame) for frame in m.outbox.frames] == [
        b'42/chat,["message:received",{"seq":1,"prev":0,"room":"r1","id":"id-hi",'
        b'"text":"hi"},"1"]']


async def test_a_message_is_encoded_once_for_all_members(gw: Gateway) -> None:
    members = [member() for _ in range(5)]  # more than one batch of 2
    for m in members:
        await gw.join(m, "r1")

    await gw.publish("r1", "hi")
    await settle()

    frames = [m.outbox.frames for m in members]
    assert all(len(f) == 1 for f in frames)
    assert all(f[0] is frames[0][0] for f in frames)


async def test_a_member_without_offsets_gets_no_offset_argument(gw: Gateway) -> None:
    plain, recovering = member(offsets=False), member()
    await gw.join(plain, "r1")
    await gw.join(recovering, "r1")

    seq = await gw.publish("r1", "hi")
    await settle()

    assert events(plain) == [received("r1", "hi", seq, 0)]
    assert events(recovering) == [received("r1", "hi", seq, 0, str(seq))]


async def test_an_ephemeral_namespace_has_no_positions(gw: Gateway) -> None:
    m = member()
    assert await gw.join(m, "r1", nsp=LIVE) == [0]

    await gw.other.publish(LIVE, "r1", b'["typing:start",{"room":"r1","user":"bob"}]',
                           logged=True)
    await settle()

    assert events(m, LIVE) == [["typing:start", {"room": "r1", "user": "bob"}]]


async def test_an_unlogged_event_in_a_durable_namespace_has_no_position(gw: Gateway) -> None:
    m = member()
    await gw.join(m, "r1")
    s1 = await gw.publish("r1", "one")

    await gw.other.publish(CHAT, "r1", b'["typing:start",{"room":"r1","user":"bob"}]')
    s2 = await gw.publish("r1", "two")
    await settle()

    assert events(m) == [received("r1", "one", s1, 0, str(s1)),
                         ["typing:start", {"room": "r1", "user": "bob"}],
                         received("r1", "two", s2, s1, str(s2))]


async def test_join_answers_the_rooms_last_logged_sequence(gw: Gateway) -> None:
    await gw.publish("r1", "a")
    s2 = await gw.publish("r1", "b")
    await gw.publish("r2", "c")

    assert await gw.join(member(), "r1", "r9") == [s2, 0]


async def test_a_room_subscribed_here_starts_a_joiner_at_the_chain_without_the_log(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = member(), member()
    await gw.join(first, "r1")
    seq = await gw.publish("r1", "a")
    await settle()
    lost = gw.lose("r1", "stored, not yet delivered here")

    async def no_probe(nsp: str, room: str) -> int:
        raise AssertionError("the log was probed for a room subscribed here")

    monkeypatch.setattr(gw.broker, "last_seq", no_probe)
    assert await gw.join(second, "r1") == [seq]  # the chain's position, not the log's end

    later = await gw.publish("r1", "b")
    await settle()
    assert texts(second) == ["stored, not yet delivered here", "b"]  # repaired, then live
    assert [e[1]["seq"] for e in events(second)] == [lost, later]


async def test_a_redelivered_live_message_goes_out_once(gw: Gateway) -> None:
    m = member()
    await gw.join(m, "r1")
    seq = await gw.publish("r1", "hi")
    assert gw.broker.sink is not None

    gw.broker.sink(Delivery(CHAT, "r1", body("r1", "hi"), seq, 0))
    await settle()

    assert texts(m) == ["hi"]


async def test_a_room_left_by_its_last_member_gets_nothing(gw: Gateway) -> None:
    m = member()
    await gw.join(m, "r1")
    await gw.fanout.leave((CHAT, "r1"), m)

    await gw.publish("r1", "after")
    await settle()

    assert m.outbox.frames == []
    assert (CHAT, "r1") not in gw.bus.subscribers


async def test_a_failed_subscribe_leaves_the_member_out(gw: Gateway) -> None:
    async def refuse(nsp: str, room: str) -> None:
        raise BrokerUnavailable("down")

    gw.broker.subscribe = refuse  # type: ignore[method-assign]
    m = member()

    with pytest.raises(BrokerUnavailable):
        await gw.join(m, "r1")

    assert (CHAT, "r1") not in gw.fanout.registry


# --- holds and floors ------------------------------------------------------------------------


async def test_a_member_on_hold_gets_everything_in_order_on_release(gw: Gateway) -> None:
    held, other = member(), member()
    held.hold = []
    await gw.join(held, "r1", "r2")
    await gw.join(other, "r1")

    s1 = await gw.publish("r1", "one")
    s2 = await gw.publish("r2", "two")
    s3 = await gw.publish("r1", "three")
    await settle()
    assert held.outbox.frames == []
    assert texts(other) == ["one", "three"]

    held.release()

    assert events(held) == [received("r1", "one", s1, 0, str(s1)),
                            received("r2", "two", s2, 0, str(s2)),
                            received("r1", "three", s3, s1, str(s3))]
    assert held.hold is None


async def test_floors_drop_live_copies_up_to_the_floor(gw: Gateway) -> None:
    m = member()
    await gw.join(m, "r1", "r2")
    m.floors = {"r1": 2}

    await gw.publish("r1", "one")  # 1
    await gw.publish("r2", "two")  # 2: another room, no floor
    await gw.publish("r1", "three")  # 3
    await settle()

    assert texts(m) == ["two", "three"]
    assert m.floors == {}


async def test_leaving_a_room_drops_its_floor(gw: Gateway) -> None:
    m = member()
    await gw.join(m, "r1")
    m.floors = {"r1": 9}

    await gw.fanout.leave((CHAT, "r1"), m)

    assert m.floors == {}


# --- replay ----------------------------------------------------------------------------------


async def log_three_rooms(gw: Gateway) -> dict[str, int]:
    """a1=1 b1=2 a2=3 c1=4 b2=5, published while no gateway listened."""
    seqs = {}
    for room, text in [("a", "a1"), ("b", "b1"), ("a", "a2"), ("c", "c1"), ("b", "b2")]:
        seqs[text] = await gw.publish(room, text)
    return seqs


async def test_replay_merges_rooms_in_log_order_with_recomputed_prev(gw: Gateway) -> None:
    s = await log_three_rooms(gw)
    m = member()

    result = await gw.fanout.replay(m, CHAT, {"a": (0, s["a2"]), "b": (0, s["b2"])},
                                    Offset(0), budget=1 << 20)

    assert result == Replayed(rooms=2, messages=4)
    assert events(m) == [
        received("a", "a1", 1, 0, "0|a:1"),
        received("b", "b1", 2, 0, "0|a:1|b:2"),
        received("a", "a2", 3, 1, "0|a:3|b:2"),
        received("b", "b2", 5, 2, "0|a:3|b:5"),
    ]
    assert (m.base, m.ahead, m.floors) == (0, {"a": 3, "b": 5}, {"a": 3, "b": 5})


async def test_replay_from_the_middle_of_a_room_finds_its_prev_in_the_log(gw: Gateway) -> None:
    s = await log_three_rooms(gw)
    m = member()

    await gw.fanout.replay(m, CHAT, {"a": (s["a1"], s["a2"]), "b": (s["b1"], s["b2"])},
                           Offset(4, {"x": 1}), budget=1 << 20)

    assert events(m) == [received("a", "a2", 3, 1, "4|a:3|x:1"),
                         received("b", "b2", 5, 2, "4|a:3|b:5|x:1")]
    assert m.base == 4


async def test_replay_without_offsets(gw: Gateway) -> None:
    await log_three_rooms(gw)
    m = member(offsets=False)

    await gw.fanout.replay(m, CHAT, {"c": (0, 9)}, Offset(0), budget=1 << 20)

    assert events(m) == [received("c", "c1", 4, 0)]


async def test_empty_ranges_replay_nothing_but_set_floors(gw: Gateway) -> None:
    await log_three_rooms(gw)
    m = member()

    result = await gw.fanout.replay(m, CHAT, {"a": (3, 3), "b": (5, 2)}, Offset(5), 1 << 20)

    assert result == Replayed(0, 0)
    assert m.outbox.frames == []
    assert (m.base, m.floors) == (5, {"a": 3, "b": 2})


async def test_a_replay_over_budget_writes_nothing(gw: Gateway) -> None:
    await log_three_rooms(gw)
    ranges = {"a": (0, 9), "b": (0, 9)}
    probe, m = member(), member()
    await gw.fanout.replay(probe, CHAT, ranges, Offset(0), budget=1 << 20)
    size = sum(len(frame) for frame in probe.outbox.frames)

    with pytest.raises(TooLarge):
        await gw.fanout.replay(m, CHAT, ranges, Offset(0), budget=size - 1)

    assert m.outbox.frames == []
    assert (m.base, m.ahead, m.floors) == (0, {}, {})


async def test_a_replay_that_fits_its_budget_exactly_goes_out(gw: Gateway) -> None:
    await log_three_rooms(gw)
    ranges = {"a": (0, 9), "b": (0, 9)}
    probe, m = member(), member()
    await gw.fanout.replay(probe, CHAT, ranges, Offset(0), budget=1 << 20)
    size = sum(len(frame) for frame in probe.outbox.frames)

    await gw.fanout.replay(m, CHAT, ranges, Offset(0), budget=size)

    assert m.outbox.frames == probe.outbox.frames


async def test_a_replay_of_more_than_the_repair_limit_is_too_large(gw: Gateway) -> None:
    log = gw.bus.log(CHAT)
    for _ in range(REPAIR_LIMIT + 1):
        log.append("big", b'["message:received",{}]', None)
    m = member()

    with pytest.raises(TooLarge):
        await gw.fanout.replay(m, CHAT, {"big": (0, REPAIR_LIMIT + 1)}, Offset(0), 1 << 30)

    assert m.outbox.frames == []


async def test_a_rooms_members_recovering_together_read_the_log_once(gw: Gateway) -> None:
    s = await log_three_rooms(gw)
    members = [member() for _ in range(5)]

    for m in members:
        await gw.fanout.replay(m, CHAT, {"a": (0, s["a2"]), "b": (s["b1"], s["b2"])},
                               Offset(0), budget=1 << 20)

    assert gw.broker.reads == [("a", 0, s["a2"]), ("b", s["b1"], s["b2"])]
    assert all(m.outbox.frames == members[0].outbox.frames for m in members)
    assert events(members[-1]) == [received("a", "a1", 1, 0, "0|a:1"),
                                   received("a", "a2", 3, 1, "0|a:3"),
                                   received("b", "b2", 5, 2, "0|a:3|b:5")]


async def test_a_later_replay_reads_only_what_the_room_logged_since(gw: Gateway) -> None:
    s = await log_three_rooms(gw)
    await gw.fanout.replay(member(), CHAT, {"a": (0, s["a2"])}, Offset(0), budget=1 << 20)
    a3 = await gw.publish("a", "a3")
    m = member()

    await gw.fanout.replay(m, CHAT, {"a": (s["a1"], a3)}, Offset(0), budget=1 << 20)

    assert gw.broker.reads == [("a", 0, s["a2"]), ("a", s["a2"], a3)]
    assert events(m) == [received("a", "a2", 3, 1, "0|a:3"), received("a", "a3", a3, 3,
                                                                     f"0|a:{a3}")]


async def test_a_range_read_past_the_logs_end_still_gets_what_is_logged_later(
        gw: Gateway) -> None:
    await log_three_rooms(gw)
    await gw.fanout.replay(member(), CHAT, {"c": (0, 9)}, Offset(0), budget=1 << 20)
    c2 = await gw.publish("c", "c2")
    m = member(offsets=False)

    await gw.fanout.replay(m, CHAT, {"c": (0, 9)}, Offset(0), budget=1 << 20)

    assert c2 <= 9
    assert events(m) == [received("c", "c1", 4, 0), received("c", "c2", c2, 4)]


async def test_live_copies_held_during_a_replay_go_out_once(gw: Gateway) -> None:
    await gw.publish("r1", "old")
    m = member()
    m.hold = []
    (end,) = await gw.join(m, "r1")
    during = await gw.publish("r1", "during")  # live, held; the replay reads it too
    after = await gw.publish("r1", "after")
    await settle()

    await gw.fanout.replay(m, CHAT, {"r1": (0, during)}, Offset(0), budget=1 << 20)
    m.release()

    assert texts(m) == ["old", "during", "after"]
    assert [event[1]["seq"] for event in events(m)] == [end, during, after]
    assert [event[1]["prev"] for event in events(m)] == [0, end, during]


async def test_a_member_ahead_of_the_frontier_never_gets_an_offset_that_moves_back(
    gw: Gateway,
) -> None:
    m = member()
    await gw.join(m, "r1", "r2")
    s1 = gw.lose("r1", "one")  # still on its way to this gateway
    s2 = gw.lose("r2", "two")
    await gw.fanout.replay(m, CHAT, {"r2": (0, s2)}, Offset(0), budget=1 << 20)
    assert events(m)[-1][-1] == f"0|r2:{s2}"
    assert gw.broker.sink is not None

    gw.broker.sink(Delivery(CHAT, "r1", body("r1", "one"), s1, 0))
    gw.broker.sink(Delivery(CHAT, "r2", body("r2", "two"), s2, 0))  # replayed: dropped
    s3 = await gw.publish("r1", "three")
    await settle()

    assert texts(m) == ["two", "one", "three"]
    assert [event[-1] for event in events(m)] == [f"0|r2:{s2}", f"{s1}|r2:{s2}", str(s3)]
    assert gw.fanout.claim(m, CHAT) == Offset(s3)


async def test_claim_names_what_the_member_was_delivered(gw: Gateway) -> None:
    m = member()
    await gw.join(m, "r1")
    await gw.publish("r1", "one")
    await settle()
    assert gw.fanout.claim(m, CHAT) == Offset(1)

    m.base, m.ahead = 7, {"r1": 9}

    assert gw.fanout.claim(m, CHAT) == Offset(7, {"r1": 9})


# --- gap repair and the tail check -----------------------------------------------------------


async def test_a_gap_in_a_rooms_chain_is_filled_from_the_log_first(gw: Gateway) -> None:
    m = member()
    await gw.join(m, "r1")
    s1 = await gw.publish("r1", "one")
    s2 = gw.lose("r1", "two")
    s3 = await gw.publish("r1", "three")
    await settle()

    assert events(m) == [received("r1", "one", s1, 0, str(s1)),
                         received("r1", "two", s2, s1, f"{s1}|r1:{s2}"),
                         received("r1", "three", s3, s2, str(s3))]
    assert gw.counter("gap_repairs") == 1
    assert gw.counter("repaired_messages") == 1


async def test_a_gap_repair_lags_behind_the_frontier_in_the_offset(gw: Gateway) -> None:
    m = member()
    await gw.join(m, "r1", "r2")
    await gw.publish("r1", "one")  # 1
    gw.lose("r1", "two")  # 2
    await gw.publish("r2", "other")  # 3: the frontier moves past the hole
    await gw.publish("r1", "three")  # 4: reveals the hole
    await settle()

    assert texts(m) == ["one", "other", "two", "three"]
    offsets = [parse_offset(event[-1]) for event in events(m)]
    assert offsets == [Offset(1), Offset(3), Offset(3, {"r1": 2}), Offset(4)]


async def test_a_gap_across_rooms_is_filled_room_by_room(gw: Gateway) -> None:
    m = member()
    await gw.join(m, "r1", "r2")
    await gw.publish("r1", "a1")
    await gw.publish("r2", "b1")
    gw.lose("r1", "a2")
    gw.lose("r2", "b2")
    gw.lose("r1", "a3")
    await gw.publish("r2", "b3")
    await gw.publish("r1", "a4")
    await settle()

    assert texts(m) == ["a1", "b1", "b2", "b3", "a2", "a3", "a4"]
    for room in ("r1", "r2"):
        chain = [e[1] for e in events(m) if e[1]["room"] == room]
        assert [c["prev"] for c in chain[1:]] == [c["seq"] for c in chain[:-1]]


async def test_after_a_disconnect_a_lost_tail_is_delivered_on_reconnect(gw: Gateway) -> None:
    m = member()
    await gw.join(m, "r1", "r2")
    s1 = await gw.publish("r1", "one")
    await settle()

    gw.fanout.disconnected()
    s2 = gw.lose("r1", "two")  # the last message before a quiet spell
    await settle()
    assert texts(m) == ["one"]  # the tail check waits for the connection

    gw.fanout.reconnected()
    await settle()

    assert events(m)[1] == received("r1", "two", s2, s1, f"{s1}|r1:{s2}")
    assert gw.counter("gap_repairs") == 1


async def test_messages_after_a_reconnect_follow_the_repaired_tail_exactly_once(
    gw: Gateway,
) -> None:
    m = member()
    await gw.join(m, "r1")
    await gw.publish("r1", "one")
    await settle()

    gw.fanout.disconnected()
    gw.lose("r1", "two")
    await gw.publish("r1", "three")  # arrives behind the disconnect mark
    await settle()
    assert texts(m) == ["one"]
    gw.fanout.reconnected()
    await gw.publish("r1", "four")
    await settle()

    assert texts(m) == ["one", "two", "three", "four"]
    chain = [e[1] for e in events(m)]
    assert [c["prev"] for c in chain[1:]] == [c["seq"] for c in chain[:-1]]
    last = parse_offset(events(m)[-1][-1])
    assert last is not None and last.start_for("r1") == chain[-1]["seq"]


async def test_a_room_resubscribed_after_its_last_member_left_starts_a_fresh_chain(
    gw: Gateway,
) -> None:
    first = member()
    await gw.join(first, "r1")
    await gw.publish("r1", "one")
    await settle()
    await gw.fanout.leave((CHAT, "r1"), first)
    await gw.publish("r1", "while nobody listened")

    m = member()
    await gw.join(m, "r1")
    await gw.publish("r1", "three")
    await settle()

    assert texts(m) == ["three"]
    assert gw.counter("gap_repairs") == 0


async def test_a_delivery_queued_when_the_room_was_left_does_not_revive_its_chain(
    gw: Gateway,
) -> None:
    first = member()
    await gw.join(first, "r1")
    await gw.publish("r1", "one")  # queued in the feed, not yet handled
    await gw.fanout.leave((CHAT, "r1"), first)
    await settle()
    await gw.publish("r1", "while nobody listened")

    m = member()
    (joined_at,) = await gw.join(m, "r1")
    await gw.publish("r1", "three")
    await settle()

    assert [e[1]["seq"] for e in events(m) if e[1]["seq"] <= joined_at] == []


async def test_a_gap_that_cannot_be_read_now_is_not_skipped(gw: Gateway) -> None:
    m = member()
    await gw.join(m, "r1")
    await gw.publish("r1", "one")
    gw.lose("r1", "two")
    gw.broker.failing_reads = 1
    await gw.publish("r1", "three")
    await settle()
    await gw.publish("r1", "four")  # the log answers again
    await settle()

    chain = [e[1] for e in events(m)]
    assert [c["prev"] for c in chain[1:]] == [c["seq"] for c in chain[:-1]]
