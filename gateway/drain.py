"""How fast a draining gateway closes its connections.

A drain exists so that clients reconnect to the other gateways without arriving all at once;
spreading the closes evenly over the whole window did that, but made a gateway holding a few
hundred sockets take the full window to stop, and its last clients waited the longest for no
benefit. The survivors absorb recoveries at a rate, not per window, so the closes go out at
``SB_DRAIN_RATE`` per second and the window only bounds the drain of a gateway holding more
than ``rate * window`` sockets (then they are spread over the window, faster than the rate).

The closes follow a schedule, not a sleep per close: a loop pass of a busy gateway takes longer
than a gap of a millisecond, and one close per pass made 5,000 closes at 1,000/s take 6.9 s.
Each pass closes every connection whose time has come (:func:`closes_due`).
"""

from __future__ import annotations


def close_gap(connections: int, window_s: float, rate: float) -> float:
    """Seconds between two closes: ``1 / rate``, or less when that would overrun the window;
    0 (all at once) for a zero window or no connections."""
    if connections <= 0 or window_s <= 0:
        return 0.0
    return min(1.0 / rate, window_s / connections)


def closes_due(elapsed_s: float, gap: float, total: int) -> int:
    """How many of ``total`` closes, one every ``gap`` seconds from the first at 0, are due
    ``elapsed_s`` into the drain (all of them with no gap)."""
    if gap <= 0:
        return total
    return max(0, min(total, int(elapsed_s / gap) + 1))
