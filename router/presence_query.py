"""Presence queries to the presence service: ``<prefix>.presence.query`` (queue group
``presence``, so one replica answers) with ``{"namespace", "room"}``, answered
``{"ok", "room", "users", "count", "truncated"}`` or ``{"ok": false, "error"}``.

No replica running (no responders) or none answering within the timeout is
:class:`~router.operations.PresenceUnavailable`, which the API answers 503 ``unavailable``.
Every replica holds the whole state, so asking again reaches the same answer elsewhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError

from router.operations import PresenceAsker, PresenceUnavailable
from shared.subjects import Subjects

QUERY_TIMEOUT_S = 2.0  # the gateway's room:presence waits as long

Request = Callable[[str, bytes, float], Awaitable[Msg]]
"""``(subject, payload, timeout) -> reply``: the NATS client's ``request``."""


def decode_reply(data: bytes) -> object:
    """The reply's JSON value, ``None`` for bytes that are not JSON."""
    try:
        value: object = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return value


def presence_asker(request: Request, subjects: Subjects,
                   timeout: float = QUERY_TIMEOUT_S) -> PresenceAsker:
    async def ask(namespace: str, room: str) -> object:
        payload = orjson.dumps({"namespace": namespace, "room": room})
        try:
            reply = await request(subjects.presence_query(), payload, timeout)
        except NoRespondersError:
            raise PresenceUnavailable("no presence replica is running") from None
        except TimeoutError:  # nats.errors.TimeoutError is one too
            raise PresenceUnavailable(
                f"no presence replica answered within {timeout:g} s") from None
        except NatsError as exc:
            raise PresenceUnavailable(
                f"NATS could not carry the query now ({type(exc).__name__})") from None
        return decode_reply(reply.data)

    return ask
