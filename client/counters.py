"""Counters of what the client did, for apps' metrics and for chaos tests' assertions
("every message exactly once": delivered + duplicates dropped add up, no unfilled gaps)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class Counters:
    messages_delivered: int = 0  # handed to on_message callbacks (after de-duplication)
    duplicates_dropped: int = 0  # live messages already delivered (or held) in their room
    gaps_detected: int = 0  # prev above the room's position: a history fill started
    gaps_filled: int = 0  # fills that closed the hole completely
    gaps_unrecoverable: int = 0  # holes reported to on_gap (history trimmed or unavailable)
    offsets_received: int = 0  # recovery offsets stripped from events
    ack_retries: int = 0  # emit_with_ack attempts after a timeout
    connects: int = 0  # successful (re)connects, the first one included
    reconnect_attempts: int = 0  # attempts after a loss, successful or not
    recoveries: int = 0  # reconnects where every namespace got its session back
    recovery_misses: int = 0  # reconnects where a namespace started a new session
    rejoins: int = 0  # rooms re-joined with room:join {since} after a miss

    def snapshot(self) -> dict[str, int]:
        return asdict(self)
