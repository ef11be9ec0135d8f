"""Recovery offsets: the opaque string appended to every logged event in a durable namespace.

An offset names the gateway's delivery frontier when the event was written: every logged
message of the socket's rooms with a sequence up to ``frontier`` had been delivered, except in
the rooms listed in ``lagging`` (rooms whose gap was being repaired), which had been delivered
up to their own position. Normally an offset is just the frontier (``"1234"``); during a repair
it also lists the lagging rooms (``"1234|room=3Aa:1180"``). Clients treat it as opaque and send
the last one back on reconnect; any gateway can resume from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.protocol.names import decode_token, encode_token

MAX_OFFSET_LENGTH = 65_536  # a socket in 100 rooms with long names lags in all of them
_DIGITS = re.compile(r"[0-9]{1,20}")


@dataclass(frozen=True, slots=True)
class Offset:
    frontier: int
    lagging: Mapping[str, int] = field(default_factory=dict)

    def start_for(self, room: str) -> int:
        """The position after which ``room`` must be replayed."""
        return self.lagging.get(room, self.frontier)


def encode_offset(frontier: int, lagging: Mapping[str, int] | None = None) -> str:
    if not lagging:
        return str(frontier)
    parts = [str(frontier)]
    parts.extend(f"{encode_token(room)}:{seq}" for room, seq in sorted(lagging.items()))
    return "|".join(parts)


def parse_offset(text: object) -> Offset | None:
    """The offset a client sent back, or ``None`` if it is not one a gateway wrote."""
    if not isinstance(text, str) or not text or len(text) > MAX_OFFSET_LENGTH:
        return None
    head, *rest = text.split("|")
    if not _DIGITS.fullmatch(head):
        return None
    lagging: dict[str, int] = {}
    for part in rest:
        token, sep, seq = part.partition(":")
        if not sep or not _DIGITS.fullmatch(seq):
            return None
        try:
            lagging[decode_token(token)] = int(seq)
        except ValueError:
            return None
    return Offset(int(head), lagging)
