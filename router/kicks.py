"""Kick requests to the gateways: ``<prefix>.gw.<id>.kick`` with ``{"user", "reason"}``,
answered ``{"kicked": n}`` by the gateway that holds the connections.

A gateway that does not answer (gone, or too old to know the subject) counts as unreached,
never as an error of the whole kick: the other gateways' answers still stand.
"""

from __future__ import annotations

import logging

import orjson
from nats.aio.client import Client

from router.gateway_ask import ask_gateway
from router.operations import Kicker
from shared.subjects import Subjects

log = logging.getLogger(__name__)

KICK_TIMEOUT_S = 2.0


def kicked_count(reply: bytes) -> int | None:
    """``n`` from a gateway's ``{"kicked": n}``, ``None`` for anything else."""
    try:
        answer = orjson.loads(reply)
    except orjson.JSONDecodeError:
        return None
    kicked = answer.get("kicked") if isinstance(answer, dict) else None
    if isinstance(kicked, bool) or not isinstance(kicked, int) or kicked < 0:
        return None
    return kicked


def gateway_kicker(nc: Client, subjects: Subjects, timeout: float = KICK_TIMEOUT_S) -> Kicker:
    async def kick(gateway: str, user: str, reason: str | None) -> int | None:
        payload = orjson.dumps({"user": user, "reason": reason})
        reply = await ask_gateway(nc, subjects.gateway_kick(gateway), payload, timeout,
                                  "kick (0 kicked there)")
        if reply is None:
            return None
        kicked = kicked_count(reply)
        if kicked is None:
            log.warning("kick: gateway %s answered something other than {kicked: n}", gateway)
        return kicked

    return kick
