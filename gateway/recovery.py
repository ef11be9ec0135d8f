"""Connection-state recovery as data: the recovery record kept in NATS KV and the replay a
reconnecting socket is owed. Pure, so every rule is a plain function call in tests.

A record holds whose socket it was and, per room, the position the socket joined at
(a join's ``since``, or the room's last logged sequence when it joined without one). A socket
comes back with the last offset it received (or none, if it never got an event: the join
positions alone then say where to start, which closes socket.io#4888); each room is replayed
from the later of its join position and the offset's claim for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.actions import Restore
from shared.protocol.offsets import Offset

VERSION = 1
MAX_PID_LENGTH = 64


@dataclass(slots=True)
class RecoveryRecord:
    """``until`` (unix seconds) is when the record stops being recoverable: pushed forward
    by every lease refresh while the socket lives, set to close + window when it drops. The
    bucket's TTL only cleans up; this is what enforces each gateway's window."""

    user: str
    nsp: str
    sid: str
    rooms: dict[str, int] = field(default_factory=dict)
    until: float = 0.0

    def encode(self) -> bytes:
        return orjson.dumps({"v": VERSION, "user": self.user, "nsp": self.nsp, "sid": self.sid,
                             "rooms": self.rooms, "until": self.until})

    def recoverable(self, now: float) -> bool:
        return now <= self.until

    @classmethod
    def decode(cls, raw: bytes | None) -> RecoveryRecord | None:
        if not raw:
            return None
        try:
            data = orjson.loads(raw)
            rooms = data["rooms"]
            if data.get("v") != VERSION or not isinstance(rooms, dict):
                return None
            return cls(str(data["user"]), str(data["nsp"]), str(data["sid"]),
                       {str(room): int(seq) for room, seq in rooms.items()},
                       float(data.get("until", 0.0)))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None


def replay_ranges(record: RecoveryRecord, offset: Offset | None,
                  ends: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Per room, the ``(after, upto]`` range a recovering socket is owed."""
    ranges = {}
    for room, joined in record.rooms.items():
        after = joined if offset is None else max(joined, offset.start_for(room))
        ranges[room] = (after, max(after, ends.get(room, after)))
    return ranges


def trimmed(ranges: dict[str, tuple[int, int]], first_seq: int) -> bool:
    """Whether the log no longer reaches back to where some room's replay must start."""
    return any(upto > after and after + 1 < first_seq for after, upto in ranges.values())


def restore_request(auth: dict[str, Any]) -> Restore | None:
    """A recovery attempt needs a string ``pid`` (socket.io-client sends ``offset`` too once
    it got an event; without one the session's join positions serve)."""
    pid, offset = auth.get("pid"), auth.get("offset")
    if not isinstance(pid, str) or not 0 < len(pid) <= MAX_PID_LENGTH:
        return None
    return Restore(pid, offset if isinstance(offset, str) else None)
