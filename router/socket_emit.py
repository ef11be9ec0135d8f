"""Emit an event to one socket: ``POST /api/v1/sockets/{sid}/emit`` and ``<prefix>.api.emit``.

The sid names the gateway that holds the socket (:mod:`shared.sids`), so no registry lookup
is needed: the router asks that gateway on ``<prefix>.gw.<gateway>.emit`` with ``{sid, event,
args}`` and relays its answer, ``{delivered: 1}`` or ``not_found``. A sid that names no
gateway is ``not_found`` at once; a gateway that does not answer (gone, or not yet knowing
the subject) is ``unavailable``. Binary arguments travel as ``{"$bin": base64}`` and reach
the client as Socket.IO binary; the gateway checks the base64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import orjson
from nats.aio.client import Client

from router.answers import Answer, Failure, bad_request, failed, not_found, ok, too_large
from router.answers import unavailable as unavailable_failure
from router.gateway_ask import ask_gateway
from shared.protocol.events import RESERVED
from shared.sids import owner_of
from shared.subjects import Subjects

EMIT_TIMEOUT_S = 2.0
EVENT_MAX = 128
SID_MAX = 256
ARGS_MAX_BYTES = 512 * 1024


@dataclass(frozen=True, slots=True)
class EmitToSocket:
    """``body`` is the gateway's request, ``{sid, event, args}``, encoded once."""

    sid: str
    body: bytes


class SocketEmitter(Protocol):
    async def __call__(self, gateway: str, body: bytes) -> bytes | None:
        """Ask one gateway to emit: its raw answer, ``None`` if it did not answer. Never
        raises for a gateway that is gone."""


def parse_emit(body: dict[str, object]) -> EmitToSocket | Failure:
    """``{sid, event, args?}``: the event as a hook reply's ``emit`` allows it (1-128
    characters, none of Socket.IO's reserved names), ``args`` a list (default empty)."""
    sid, event, args = body.get("sid"), body.get("event"), body.get("args", [])
    if not isinstance(sid, str) or not 0 < len(sid) <= SID_MAX:
        return bad_request(f"sid must be a string of 1-{SID_MAX} characters")
    if not isinstance(event, str) or not 0 < len(event) <= EVENT_MAX or event in RESERVED:
        return bad_request(f"event must be 1-{EVENT_MAX} characters and not one Socket.IO "
                           "reserves")
    if not isinstance(args, list):
        return bad_request("args must be a list")
    try:
        encoded = orjson.dumps({"sid": sid, "event": event, "args": args})
    except TypeError:
        return bad_request("args is not encodable JSON (nested too deeply?)")
    if len(encoded) > ARGS_MAX_BYTES:
        return too_large(f"the emit is over {ARGS_MAX_BYTES} bytes encoded")
    return EmitToSocket(sid, encoded)


def emit_answer(reply: bytes | None) -> Answer:
    """The API's answer from the gateway's: ``{ok, delivered}``, its ``not_found`` or
    ``bad_request`` passed on, ``unavailable`` for silence or anything unreadable."""
    if reply is None:
        return failed(unavailable_failure("the socket's gateway did not answer"))
    try:
        answer = orjson.loads(reply)
    except orjson.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        return failed(unavailable_failure("the socket's gateway gave an unreadable answer"))
    if answer.get("ok") is True and answer.get("delivered") == 1:
        return ok(delivered=1)
    error = answer.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    message = message if isinstance(message, str) else "no message"
    if code == "not_found":
        return failed(not_found(message))
    if code == "bad_request":
        return failed(bad_request(message))
    return failed(unavailable_failure(f"the socket's gateway answered {code!r}: {message}"))


async def emit_to_socket(request: EmitToSocket, emitter: SocketEmitter) -> Answer:
    owner = owner_of(request.sid)
    if owner is None:
        return failed(not_found("no socket with this sid (it names no gateway)"))
    return emit_answer(await emitter(owner, request.body))


def gateway_emitter(nc: Client, subjects: Subjects,
                    timeout: float = EMIT_TIMEOUT_S) -> SocketEmitter:
    async def emit(gateway: str, body: bytes) -> bytes | None:
        return await ask_gateway(nc, subjects.gateway_emit(gateway), body, timeout, "emit")

    return emit
