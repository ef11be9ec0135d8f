"""Engine.IO heartbeat as pure state: the server pings at a fixed cadence and counts misses.

A ping goes out every ``interval`` whether or not the last pong came (the cadence never drifts
with round-trip time, unlike the reference server's timer refresh); a ping whose pong has not
arrived ``timeout`` after it was sent is a miss, and ``max_misses`` consecutive misses end the
transport. The shell owns one timer per connection set to :meth:`Heartbeat.next_deadline`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Beat(Enum):
    PING = "ping"
    DEAD = "dead"


@dataclass(slots=True)
class Heartbeat:
    interval: float
    timeout: float
    max_misses: int
    next_ping: float
    awaiting_since: float | None = None
    misses: int = 0

    @classmethod
    def start(cls, now: float, interval: float, timeout: float, max_misses: int) -> Heartbeat:
        return cls(interval, timeout, max_misses, next_ping=now + interval)

    def next_deadline(self) -> float:
        if self.awaiting_since is not None:
            return min(self.next_ping, self.awaiting_since + self.timeout)
        return self.next_ping

    def on_pong(self) -> None:
        self.awaiting_since = None
        self.misses = 0

    def on_timer(self, now: float) -> list[Beat]:
        """What is due at ``now``: possibly a miss verdict, then possibly a ping."""
        beats: list[Beat] = []
        if self.awaiting_since is not None and now >= self.awaiting_since + self.timeout:
            self.awaiting_since = None
            self.misses += 1
            if self.misses >= self.max_misses:
                return [Beat.DEAD]
        if now >= self.next_ping:
            while self.next_ping <= now:
                self.next_ping += self.interval
            if self.awaiting_since is None:
                self.awaiting_since = now
            beats.append(Beat.PING)
        return beats
