"""The ingest fold: one write per socket (its newest record), per typist (the last notice)
and per boot notice; a batch's failed writes are reported, not raised."""

from __future__ import annotations

from presence.ingest import Batch, fold, notice_kind, store_batch
from presence.memory_store import MemoryPresenceStore
from presence.store import Change
from shared.presence_wire import GatewayBoot, SocketRecord, TypingNotice, room_key

ROOM = room_key("/chat", "room:a")


def record(conn: str, seq: int, boot: str = "b1") -> SocketRecord:
    return SocketRecord("gw", boot, conn, "alice", frozenset({ROOM}), True, seq, float(seq))


def test_only_the_newest_record_of_each_socket_is_written() -> None:
    batch = fold([record("c1", 2), record("c1", 5), record("c1", 3), record("c2", 1),
                  record("c1", 1, boot="b2")])

    assert sorted(r.seq for r in batch.records.values()) == [1, 1, 5]
    assert batch.records[("gw/b1", "c1")].seq == 5


def test_the_last_typing_notice_wins_and_boots_and_garbage_are_kept_or_dropped() -> None:
    batch = fold([TypingNotice(ROOM, "alice", True, 1.0), None,
                  TypingNotice(ROOM, "alice", False, 2.0), GatewayBoot("gw", "b1", 1.0)])

    assert list(batch.typing.values()) == [TypingNotice(ROOM, "alice", False, 2.0)]
    assert batch.boots == [GatewayBoot("gw", "b1", 1.0)]
    assert batch.records == {}


def test_notice_kinds_are_the_metric_labels() -> None:
    assert [notice_kind(n) for n in (record("c", 1), TypingNotice(ROOM, "u", True, 1.0),
                                     GatewayBoot("gw", "b", 1.0), None)] == [
        "record", "typing", "boot", "invalid"]


async def test_a_batch_is_stored_and_reports_no_failure() -> None:
    store = MemoryPresenceStore(lambda: 0.0, 60.0, 5.0)

    failed = await store_batch(store, fold([record("c1", 1), GatewayBoot("gw", "b1", 0.0),
                                            TypingNotice(ROOM, "alice", True, 0.0)]))

    assert failed == []
    stored: list[Change] = []
    async for change in store.follow():
        if change is None:
            break
        stored.append(change)
    assert sorted(change.kind for change in stored) == ["c", "g", "t"]


class Unreachable(MemoryPresenceStore):
    async def store_boot(self, boot: GatewayBoot) -> None:
        raise TimeoutError("no answer")


async def test_failed_writes_are_returned_for_the_batch_to_be_redelivered() -> None:
    store = Unreachable(lambda: 0.0, 60.0, 5.0)
    batch = Batch(records={("gw/b1", "c1"): record("c1", 1)},
                  boots=[GatewayBoot("gw", "b1", 0.0)])

    failed = await store_batch(store, batch)

    assert [type(exc) for exc in failed] == [TimeoutError]
