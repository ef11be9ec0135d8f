"""The timings and thresholds the pure presence state runs on, and how the service's settings
become them (the state knows nothing of environment variables)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import PresenceSettings


@dataclass(frozen=True, slots=True)
class PresenceConfig:
    """Timings in seconds. ``tombstone_ttl`` must cover the grace (restore relies on it) and
    the replication lag between replicas (merge relies on it)."""

    grace: float = 5.0
    typing_ttl: float = 5.0
    big_room: int = 100
    summary_interval: float = 2.0
    tombstone_ttl: float = 60.0

    def __post_init__(self) -> None:
        if self.grace < 0 or self.typing_ttl <= 0 or self.summary_interval <= 0:
            raise ValueError("grace must be >= 0, typing_ttl and summary_interval > 0")
        if self.big_room < 1:
            raise ValueError("big_room must be >= 1")
        if self.tombstone_ttl < self.grace:
            raise ValueError("tombstone_ttl must be >= grace")


def config_of(settings: PresenceSettings) -> PresenceConfig:
    """Tombstones outlive twice the grace (and at least a minute), so a replica restoring the
    bucket still finds every departure whose grace has not run out."""
    return PresenceConfig(grace=settings.grace_s, typing_ttl=settings.typing_ttl_s,
                          big_room=settings.big_room,
                          summary_interval=settings.summary_interval_s,
                          tombstone_ttl=max(60.0, 2 * settings.grace_s))
