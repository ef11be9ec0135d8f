"""Session ids that name the gateway holding the session.

An Engine.IO sid (and a namespace socket's sid) is 128 random bits, URL-safe base64, then
``~`` and the owning gateway's instance id in the reversible token encoding of
:mod:`shared.protocol.names` (``[A-Za-z0-9_-]`` and ``=HH``; neither alphabet has ``~``). Any
gateway, and the router, can therefore reach the owner of a sid without a lookup: a polling
request that lands elsewhere is forwarded to it, a backend's emit to one socket goes straight
to it. Recovery never depends on it: a recovered session keeps its own ids wherever it lands.
"""

from __future__ import annotations

import secrets

from shared.protocol.names import decode_token, encode_token

SEPARATOR = "~"
RANDOM_BYTES = 16


def new_sid(owner: str) -> str:
    return secrets.token_urlsafe(RANDOM_BYTES) + sid_suffix(owner)


def sid_suffix(owner: str) -> str:
    """What every sid of ``owner`` ends with (a gateway computes it once)."""
    return SEPARATOR + encode_token(owner)


def owner_of(sid: str) -> str | None:
    """The instance id of the gateway that made ``sid``; ``None`` for anything else."""
    random, found, owner = sid.rpartition(SEPARATOR)
    if not found or len(random) < 22 or not owner:
        return None
    try:
        return decode_token(owner)
    except ValueError:
        return None
