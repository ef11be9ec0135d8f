"""Presence config: bad timings are refused; the service's settings map onto the state's
config, with tombstones outliving twice the grace."""

from __future__ import annotations

from typing import Any

import pytest

from presence.config import PresenceConfig, config_of
from shared.config import PresenceSettings


@pytest.mark.parametrize(
    "kwargs",
    [{"grace": -1.0}, {"typing_ttl": 0.0}, {"summary_interval": 0.0}, {"big_room": 0},
     {"grace": 10.0, "tombstone_ttl": 5.0}],
)
def test_bad_config_is_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PresenceConfig(**kwargs)


def test_settings_become_the_config() -> None:
    settings = PresenceSettings(grace_s=40.0, typing_ttl_s=6.0, big_room=50,
                                summary_interval_s=3.0)

    assert config_of(settings) == PresenceConfig(grace=40.0, typing_ttl=6.0, big_room=50,
                                                 summary_interval=3.0, tombstone_ttl=80.0)
    assert config_of(PresenceSettings(grace_s=1.0)).tombstone_ttl == 60.0
