"""The per-room sequence tracker: duplicates dropped, in-order messages delivered, a gap
held and filled from history page by page, and holes the log no longer covers reported."""

from __future__ import annotations

from typing import Any

from client.sequence import Deliver, Drop, Fetch, Gap, Hold, SequenceTracker


def msg(seq: int, prev: int, room: str = "room:a") -> dict[str, Any]:
    return {"room": room, "id": f"m{seq}", "seq": seq, "prev": prev, "from": "u",
            "text": f"t{seq}", "ts": 0}


def seqs(messages: tuple[Any, ...]) -> list[int]:
    return [m["seq"] for m in messages]


def test_first_message_of_an_unknown_room_is_delivered_whatever_its_prev() -> None:
    tracker = SequenceTracker()

    assert tracker.receive(msg(40, 31)) == Deliver((msg(40, 31),))
    assert tracker.last("room:a") == 40


def test_next_message_in_the_chain_is_delivered() -> None:
    tracker = SequenceTracker.starting_at({"room:a": 10})

    assert isinstance(tracker.receive(msg(12, 10)), Deliver)
    assert isinstance(tracker.receive(msg(13, 12)), Deliver)
    assert tracker.positions() == {"room:a": 13}


def test_at_or_below_the_last_seq_is_a_duplicate() -> None:
    tracker = SequenceTracker.starting_at({"room:a": 10})

    assert tracker.receive(msg(10, 7)) == Drop("room:a", 10)
    assert tracker.receive(msg(9, 7)) == Drop("room:a", 9)
    assert tracker.last("room:a") == 10


def test_rooms_are_tracked_separately() -> None:
    tracker = SequenceTracker.starting_at({"room:a": 10, "room:b": 11})

    assert isinstance(tracker.receive(msg(12, 11, "room:b")), Deliver)
    assert isinstance(tracker.receive(msg(13, 10, "room:a")), Deliver)
    assert tracker.positions() == {"room:a": 13, "room:b": 12}


def test_prev_above_the_last_seq_is_a_gap_to_fetch_and_later_messages_wait() -> None:
    tracker = SequenceTracker.starting_at({"room:a": 10})

    assert tracker.receive(msg(20, 15)) == Fetch("room:a", since=10)
    assert tracker.filling("room:a")
    assert tracker.receive(msg(22, 20)) == Hold("room:a", 22)
    assert tracker.receive(msg(22, 20)) == Drop("room:a", 22)  # held already
    assert tracker.last("room:a") == 10  # nothing delivered past the hole


def test_a_history_page_that_closes_the_gap_releases_everything_in_order() -> None:
    tracker = SequenceTracker.starting_at({"room:a": 10})
    tracker.receive(msg(20, 15))
    tracker.receive(msg(22, 20))

    outcome = tracker.fill("room:a", [msg(15, 12), msg(12, 10), msg(20, 15)], complete=True)

    assert seqs(outcome.messages) == [12, 15, 20, 22]
    assert outcome.gaps == () and outcome.fetch is None
    assert tracker.last("room:a") == 22 and not tracker.filling("room:a")


def test_a_page_cut_by_its_limit_asks_for_the_next_page() -> None:
    tracker = SequenceTracker.starting_at({"room:a": 10})
    tracker.receive(msg(30, 25))

    first = tracker.fill("room:a", [msg(12, 10), msg(15, 12)], complete=True)

    assert seqs(first.messages) == [12, 15]
    assert first.fetch == Fetch("room:a", since=15)
    assert tracker.filling("room:a")
    second = tracker.fill("room:a", [msg(25, 15)], complete=True)
    assert seqs(second.messages) == [25, 30]
    assert second.fetch is None and tracker.last("room:a") == 30


def test_a_page_marked_incomplete_that_made_progress_still_pages_on() -> None:
    # `complete: false` after a page that chains on means "more after this page".
    tracker = SequenceTracker.starting_at({"room:a": 10})
    tracker.receive(msg(30, 25))

    first = tracker.fill("room:a", [msg(12, 10)], complete=False)

    assert seqs(first.messages) == [12]
    assert first.gaps == () and first.fetch == Fetch("room:a", since=12)


def test_an_incomplete_history_reports_the_hole_then_goes_on() -> None:
    tracker = SequenceTracker.starting_at({"room:a": 10})
    tracker.receive(msg(30, 25))
    tracker.receive(msg(31, 30))

    outcome = tracker.fill("room:a", [msg(25, 18)], complete=False)  # 10 < seq <= 18 trimmed

    assert outcome.items == (Gap("room:a", 10, 18, "incomplete"), msg(25, 18), msg(30, 25),
                             msg(31, 30))
    assert outcome.fetch is None
    assert tracker.last("room:a") == 31 and not tracker.filling("room:a")


def test_a_complete_page_without_progress_reports_the_hole_instead_of_looping() -> None:
    tracker = SequenceTracker.starting_at({"room:a": 10})
    tracker.receive(msg(30, 25))

    outcome = tracker.fill("room:a", [], complete=True)

    assert outcome.items == (Gap("room:a", 10, 25, "missing"), msg(30, 25))
    assert outcome.fetch is None


def test_not_recoverable_gives_up_with_the_missing_range() -> None:
    tracker = SequenceTracker.starting_at({"room:a": 10})
    tracker.receive(msg(30, 25))
    tracker.receive(msg(40, 35))  # a second hole inside what is held

    outcome = tracker.give_up("room:a", "not_recoverable")

    assert outcome.items == (
        Gap("room:a", 10, 25, "not_recoverable"), msg(30, 25),
        Gap("room:a", 30, 35, "not_recoverable"), msg(40, 35),
    )
    assert tracker.last("room:a") == 40


def test_duplicates_from_history_and_live_are_delivered_once() -> None:
    tracker = SequenceTracker.starting_at({"room:a": 10})
    tracker.receive(msg(15, 12))

    outcome = tracker.fill("room:a", [msg(12, 10), msg(15, 12), msg(15, 12)], complete=True)

    assert seqs(outcome.messages) == [12, 15]
    assert tracker.receive(msg(15, 12)) == Drop("room:a", 15)


def test_positions_from_an_earlier_run_make_its_messages_duplicates() -> None:
    saved = {"room:a": 40}
    tracker = SequenceTracker.starting_at(saved)

    assert isinstance(tracker.receive(msg(40, 31)), Drop)
    assert isinstance(tracker.receive(msg(41, 40)), Deliver)
    assert saved == {"room:a": 40}  # the caller's mapping is not mutated


def test_messages_without_seq_pass_through_untracked() -> None:
    tracker = SequenceTracker()
    plain = {"room": "room:a", "id": "x", "text": "hi"}

    assert tracker.receive(plain) == Deliver((plain,))
    assert tracker.receive(plain) == Deliver((plain,))
    assert tracker.positions() == {}
