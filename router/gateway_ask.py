"""One request to one gateway (kick, emit): its raw answer, or ``None`` when the gateway did
not answer — gone, too old to know the subject, or too slow. Never raises for that: a gateway
that is gone is an outcome the caller words (``unreached``, ``unavailable``), not an error of
the router."""

from __future__ import annotations

import logging

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError

log = logging.getLogger(__name__)


async def ask_gateway(nc: Client, subject: str, payload: bytes, timeout_s: float,
                      what: str) -> bytes | None:
    try:
        reply = await nc.request(subject, payload, timeout=timeout_s)
    except NoRespondersError:
        log.warning("%s: no responder on %s (the gateway is gone?)", what, subject)
        return None
    except (NatsError, TimeoutError) as exc:
        log.warning("%s: %s did not answer (%s)", what, subject, type(exc).__name__)
        return None
    data: bytes = reply.data
    return data
