"""Retry pauses, pure: one schedule for every retry loop in the cluster and the client SDK.

Every loop that retries against NATS (a log read repairing a gap, presence notices that were
not stored, a start-up step while the cluster elects its leader, a compare-and-set that lost a
race) and the SDK's reconnect wait between attempts; written by hand each time, the loops
drifted apart and none was tested. The schedule is a plain function of the attempt number and
a random draw, so tests pass the draw and get exact pauses; the shells sleep.

A pause grows as ``base * factor**attempt + step * attempt`` (``factor`` 2: doubling;
``factor`` 1 with a ``step``: linear) and never exceeds ``cap``. Jitter spreads a fleet of
retriers out: ``jitter`` adds up to that many seconds; ``full_jitter`` draws the pause
uniformly below the (capped) grown value instead (what racing compare-and-set writers want).
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# factor**64 times any sensible base is past any cap; bounding the exponent avoids overflow.
_MAX_EXPONENT = 64


@dataclass(frozen=True, slots=True)
class Backoff:
    """``base``: the first pause (s); ``cap``: no pause is longer (s); ``factor`` and ``step``:
    how a pause grows from one attempt to the next; ``jitter`` (s) and ``full_jitter``: how
    the random draw (in [0, 1)) enters."""

    base: float
    cap: float = math.inf
    factor: float = 2.0
    step: float = 0.0
    jitter: float = 0.0
    full_jitter: bool = False

    def __post_init__(self) -> None:
        if min(self.base, self.cap, self.step, self.jitter) < 0 or self.factor < 1:
            raise ValueError("a backoff's pauses must be >= 0 and must not shrink")

    def delay(self, attempt: int, random: float = 0.0) -> float:
        """The pause after failed attempt ``attempt`` (0 for the first), in seconds, for the
        random draw ``random``."""
        if attempt < 0:
            raise ValueError("attempt must be >= 0")
        grown = self.base * self.factor ** min(attempt, _MAX_EXPONENT) + self.step * attempt
        if self.full_jitter:
            return min(self.cap, grown) * random
        return min(self.cap, grown + self.jitter * random)

    def delays(self, random: Callable[[], float] = _random.random,
               attempts: int | None = None) -> Iterator[float]:
        """The pauses of one run of retries, one draw of ``random`` each; endless unless
        ``attempts`` bounds them. Start a new run after every success."""
        attempt = 0
        while attempts is None or attempt < attempts:
            yield self.delay(attempt, random())
            attempt += 1


CAS_RACE = Backoff(base=0.002, cap=0.1, factor=1.0, step=0.002, full_jitter=True)
"""The pause of a writer that lost a compare-and-set race before it reads again (the
registry's and the presence store's): short, uniformly drawn below a bound that grows by
2 ms an attempt, so writers racing for one key spread out instead of colliding again."""
