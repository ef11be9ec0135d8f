"""Per-room prev chains: what a gateway does with each live message of a durable namespace,
and the delivery frontier the recovery offset is written from."""

from __future__ import annotations

from gateway.chain import RoomChains
from shared.chain import DUPLICATE, NEW, Gap
from shared.protocol.offsets import parse_offset


def live(chains: RoomChains, room: str, seq: int, prev: int) -> object:
    """Observe a live message and, unless told otherwise, deliver it as the feed does."""
    verdict = chains.observe(room, seq, prev)
    if verdict is NEW:
        chains.delivered_live(room, seq)
    return verdict


def test_a_room_without_a_chain_delivers_whatever_its_prev() -> None:
    chains = RoomChains()

    assert chains.observe("a", 7, 0) is NEW
    assert chains.observe("a", 7, 5) is NEW
    assert chains.offset() == "0"


def test_the_next_link_delivers() -> None:
    chains = RoomChains()
    chains.start("a", 4)

    assert chains.observe("a", 9, 4) is NEW
    assert chains.observe("a", 9, 3) is NEW  # prev below last: nothing is missing


def test_a_sequence_at_or_below_the_last_delivered_is_a_duplicate() -> None:
    chains = RoomChains()
    chains.start("a", 0)
    live(chains, "a", 5, 0)

    assert chains.observe("a", 5, 0) is DUPLICATE
    assert chains.observe("a", 3, 0) is DUPLICATE


def test_prev_above_the_last_delivered_is_a_gap_between_them() -> None:
    chains = RoomChains()
    chains.start("a", 2)

    assert chains.observe("a", 9, 6) == Gap(after=2, before=9)


def test_start_keeps_a_chain_that_already_began() -> None:
    chains = RoomChains()
    live(chains, "a", 5, 3)

    chains.start("a", 4)

    assert chains.last == {"a": 5}


def test_rooms_have_separate_chains() -> None:
    chains = RoomChains()
    chains.start("a", 0)
    chains.start("b", 0)
    live(chains, "a", 1, 0)

    assert chains.observe("b", 2, 0) is NEW
    assert chains.observe("b", 1, 0) is NEW


def test_the_frontier_is_the_highest_live_sequence_delivered() -> None:
    chains = RoomChains()
    for room in ("a", "b"):
        chains.start(room, 0)

    live(chains, "a", 1, 0)
    live(chains, "b", 2, 0)
    live(chains, "a", 3, 1)

    assert chains.frontier == 3
    assert chains.positions == {}
    assert chains.offset() == "3"


def test_live_then_gap_repair_then_live() -> None:
    chains = RoomChains()
    for room in ("a", "b"):
        chains.start(room, 0)
    live(chains, "a", 1, 0)
    live(chains, "b", 2, 0)
    live(chains, "a", 3, 1)
    # b:4 and a:5 were lost; b:6 arrives first.

    gap = chains.observe("b", 6, 4)
    assert gap == Gap(after=2, before=6)
    chains.delivered_repair("b", 4)
    assert chains.positions == {"b": 4}  # ahead of the frontier while the repair goes on
    assert chains.offset() == "3|b:4"
    chains.delivered_live("b", 6)
    assert (chains.frontier, chains.positions, chains.offset()) == (6, {}, "6")

    gap = chains.observe("a", 7, 5)
    assert gap == Gap(after=3, before=7)
    chains.delivered_repair("a", 5)
    assert chains.positions == {"a": 5}  # behind the frontier: lagging
    offset = parse_offset(chains.offset())
    assert offset is not None
    assert (offset.start_for("a"), offset.start_for("b")) == (5, 6)
    chains.delivered_live("a", 7)
    assert (chains.frontier, chains.positions, chains.offset()) == (7, {}, "7")
    assert chains.last == {"a": 7, "b": 6}


def test_a_lagging_room_stays_lagging_while_other_rooms_move_the_frontier() -> None:
    chains = RoomChains(last={"a": 2, "b": 3}, frontier=10)
    chains.delivered_repair("a", 4)

    chains.delivered_live("b", 11)

    assert chains.positions == {"a": 4}
    assert chains.offset() == "11|a:4"


def test_a_room_ahead_is_dropped_once_the_frontier_passes_it() -> None:
    chains = RoomChains(last={"a": 2, "b": 3}, frontier=3)
    chains.delivered_repair("a", 8)
    chains.repair_done("a")
    assert chains.offset() == "3|a:8"

    chains.delivered_live("b", 5)
    assert chains.positions == {"a": 8}

    chains.delivered_live("b", 8)
    assert chains.positions == {}
    assert chains.offset() == "8"


def test_repair_done_behind_the_frontier_means_the_room_is_caught_up() -> None:
    chains = RoomChains(last={"a": 2}, frontier=10)
    chains.delivered_repair("a", 6)
    chains.delivered_repair("a", 7)
    assert chains.offset() == "10|a:7"

    chains.repair_done("a")

    assert chains.positions == {}
    assert chains.offset() == "10"
    assert chains.last == {"a": 7}


def test_repair_done_of_a_room_without_a_position_changes_nothing() -> None:
    chains = RoomChains(last={"a": 2}, frontier=10)

    chains.repair_done("a")

    assert (chains.positions, chains.offset()) == ({}, "10")


def test_forget_starts_a_fresh_chain() -> None:
    chains = RoomChains()
    chains.start("a", 0)
    live(chains, "a", 1, 0)
    chains.delivered_repair("a", 1)

    chains.forget("a")

    assert "a" not in chains.last and "a" not in chains.positions
    assert chains.observe("a", 9, 7) is NEW  # no gap: the new chain begins here
    chains.start("a", 7)
    assert chains.observe("a", 9, 8) == Gap(after=7, before=9)


def test_offsets_of_room_names_with_separators_parse_back() -> None:
    chains = RoomChains(last={"room:a@b": 1}, frontier=9)
    chains.delivered_repair("room:a@b", 4)

    offset = parse_offset(chains.offset())

    assert offset is not None
    assert offset.frontier == 9
    assert dict(offset.lagging) == {"room:a@b": 4}
