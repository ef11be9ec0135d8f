"""Abuse detection, pure: rate-limit rejections counted over a sliding window.

A client that keeps hammering after being told ``rate_limited`` is not a slow client but a
broken or hostile one; past ``factor`` times its per-second allowance rejected within
``window`` seconds the connection is ended for good (a server DISCONNECT, not a close the
client would retry).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class AbuseMeter:
    threshold: int
    window: float = 10.0
    rejections: deque[float] = field(default_factory=deque)

    @classmethod
    def for_rate(cls, per_second: float, factor: float = 10.0, window: float = 10.0) -> AbuseMeter:
        return cls(max(1, int(per_second * factor)), window)

    def reject(self, now: float) -> bool:
        """Count one rejection; ``True`` once the window holds more than the threshold."""
        rejections = self.rejections
        rejections.append(now)
        horizon = now - self.window
        while rejections and rejections[0] <= horizon:
            rejections.popleft()
        return len(rejections) > self.threshold
