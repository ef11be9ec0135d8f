"""Reconnect delays: ``min(cap, base * 2**attempt + jitter)`` with jitter drawn from [0, 1) s.

The exponential part keeps a fleet of clients from hammering a gateway that is coming back;
the jitter spreads the fleet out so a gateway's death does not turn into a synchronised
reconnect storm on the survivors. The random source is injected so the schedule is a plain,
testable function of its inputs.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Iterator

DEFAULT_BASE_S = 0.5
DEFAULT_CAP_S = 30.0
JITTER_S = 1.0
# 2**64 times any sensible base is past any cap; bounding the exponent avoids float overflow.
_MAX_EXPONENT = 64


def reconnect_delay(attempt: int, base: float, cap: float, jitter: float) -> float:
    """The delay before reconnect attempt ``attempt`` (0 for the first), in seconds."""
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    exponential = base * 2.0 ** min(attempt, _MAX_EXPONENT)
    return min(cap, exponential + jitter)


def reconnect_delays(
    base: float = DEFAULT_BASE_S,
    cap: float = DEFAULT_CAP_S,
    random: Callable[[], float] = _random.random,
) -> Iterator[float]:
    """Endless schedule for one outage; start a new one after every successful connect.

    ``random`` returns a float in [0, 1); it is scaled to the 0-1 s jitter.
    """
    if base < 0 or cap < 0:
        raise ValueError("base and cap must be >= 0")
    attempt = 0
    while True:
        yield reconnect_delay(attempt, base, cap, JITTER_S * random())
        attempt += 1
