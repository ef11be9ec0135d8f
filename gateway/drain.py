"""How fast a draining gateway closes its connections.

A drain exists so that clients reconnect to the other gateways without arriving all at once;
spreading the closes evenly over the whole window did that, but made a gateway holding a few
hundred sockets take the full window to stop, and its last clients waited the longest for no
benefit. The survivors absorb recoveries at a rate, not per window, so the closes go out at
``SB_DRAIN_RATE`` per second and the window only bounds the drain of a gateway holding more
than ``rate * window`` sockets (then they are spread over the window, faster than the rate).

The drain closes at most one connection per event-loop pass, so a busy gateway closes slower
than the rate but never faster than it finishes each close's own work (the registry release,
the session record, presence): a schedule that caught up with several closes per pass gained
nothing in measured storms and cost the draining gateway 30-50 % more CPU.
"""

from __future__ import annotations


def close_gap(connections: int, window_s: float, rate: float) -> float:
    """Seconds between two closes: ``1 / rate``, or less when that would overrun the window;
    0 (all at once) for a zero window or no connections."""
    if connections <= 0 or window_s <= 0:
        return 0.0
    return min(1.0 / rate, window_s / connections)
