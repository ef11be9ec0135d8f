"""The router's own settings on top of :class:`shared.config.RouterSettings`.

Same declaration style as ``shared/config.py`` (variable, parser and doc in each field's
metadata), so ``shared.config.load`` and ``describe`` work on it unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from shared.config import ConfigError, RouterSettings


def _positive_float(raw: str) -> float:
    value = float(raw.strip())
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a positive number")
    return value


def _positive_int(raw: str) -> int:
    value = int(raw.strip())
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _setting(env: str, parse: Any, default: Any, doc: str) -> Any:
    return field(default=default, metadata={"env": env, "parse": parse, "doc": doc})


@dataclass(frozen=True, slots=True)
class RouterApiSettings(RouterSettings):
    """What ``python -m router`` reads: the shared router settings plus the API's limits."""

    api_rate: float = _setting("SB_API_RATE", _positive_float, 1000.0,
                               "server API requests per second, per router (HTTP and NATS)")
    api_burst: int = _setting("SB_API_BURST", _positive_int, 2000,
                              "server API burst, requests, per router")

    def __post_init__(self) -> None:
        RouterSettings.__post_init__(self)
        if not self.api_key:
            # an empty key would let an empty bearer token through
            raise ConfigError("SB_API_KEY must be set for the router")
