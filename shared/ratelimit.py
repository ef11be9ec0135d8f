"""Token bucket, pure: callers pass ``now`` and get a verdict with the wait it implies."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    rate: float  # tokens per second
    burst: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> TokenBucket:
        return cls(rate, burst, burst, now)

    def take(self, now: float, cost: float = 1.0) -> int:
        """Take ``cost`` tokens; returns 0 on success, else the ms to wait before retrying."""
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
        if self.tokens >= cost:
            self.tokens -= cost
            return 0
        if self.rate <= 0:
            return 2**31 - 1
        return max(1, math.ceil((cost - self.tokens) / self.rate * 1000))
