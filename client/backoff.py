"""Reconnect delays: ``min(cap, base * 2**attempt + jitter)`` with jitter drawn from [0, 1) s.

The exponential part keeps a fleet of clients from hammering a gateway that is coming back;
the jitter spreads the fleet out so a gateway's death does not turn into a synchronised
reconnect storm on the survivors. The schedule is the cluster's one backoff
(:mod:`shared.backoff`); this module names the SDK's defaults for it.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Iterator

from shared.backoff import Backoff

DEFAULT_BASE_S = 0.5
DEFAULT_CAP_S = 30.0
JITTER_S = 1.0


def reconnect_delay(attempt: int, base: float, cap: float, jitter: float) -> float:
    """The delay before reconnect attempt ``attempt`` (0 for the first), in seconds, with
    ``jitter`` seconds already drawn."""
    return min(cap, Backoff(base, cap).delay(attempt) + jitter)


def reconnect_delays(
    base: float = DEFAULT_BASE_S,
    cap: float = DEFAULT_CAP_S,
    random: Callable[[], float] = _random.random,
) -> Iterator[float]:
    """Endless schedule for one outage; start a new one after every successful connect.

    ``random`` returns a float in [0, 1); it is scaled to the 0-1 s jitter.
    """
    return Backoff(base, cap, jitter=JITTER_S).delays(random)
