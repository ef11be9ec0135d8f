"""Which gateway the devcluster balancer tries next, as pure state.

Round-robin per TCP connection with no stickiness, like the production balancers in
``deploy/``: gateways whose ``/readyz`` last failed (down, starting, draining) are skipped,
and the balancer tries the next one in this order when a connect is refused. When no gateway
looks healthy every one is still tried, so a health check that lags a restart never turns
the whole cluster away.
"""

from __future__ import annotations

from collections.abc import Sequence

Upstream = tuple[str, int]


class Rotation:
    """The upstreams, their last health verdicts and the round-robin cursor."""

    def __init__(self, upstreams: Sequence[Upstream]) -> None:
        if not upstreams:
            raise ValueError("a rotation needs at least one upstream")
        self.upstreams = tuple(upstreams)
        self._healthy = set(self.upstreams)
        self._next = 0

    def mark(self, upstream: Upstream, healthy: bool) -> None:
        """Record a health check's verdict for ``upstream``."""
        if healthy:
            self._healthy.add(upstream)
        else:
            self._healthy.discard(upstream)

    def healthy(self, upstream: Upstream) -> bool:
        return upstream in self._healthy

    def order(self) -> list[Upstream]:
        """The upstreams to try for one new connection, best first: the healthy ones from the
        cursor on, then the rest; the cursor advances once per connection."""
        start = self._next % len(self.upstreams)
        self._next += 1
        turn = self.upstreams[start:] + self.upstreams[:start]
        return [u for u in turn if u in self._healthy] + [u for u in turn
                                                          if u not in self._healthy]
