"""An event to one socket from the server API: the gateway's side of ``POST
/api/v1/sockets/{sid}/emit``.

The router reads the owning gateway from the sid (:mod:`shared.sids`) and asks it on
``<prefix>.gw.<gateway>.emit``; this gateway finds the namespace socket and writes one EVENT
frame to it, as a hook reply's ``emit`` does: not logged, so no ``seq`` and no recovery
offset. A socket whose client recovers (a durable namespace, recovery on) would take a last
string argument for an offset, so such an emit is refused with ``bad_request`` rather than
corrupting the client's position. The parsing and the answer are pure; the shell only finds
the socket and pushes the frames.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError

from gateway.actions import Action, NamespaceSocket, SendBinary, SendText
from gateway.hook_wire import EVENT_NAME_MAX, from_wire
from gateway.outbox import Outbox
from gateway.replies import emit_frames
from shared.protocol.errors import ErrorCode, error_ack
from shared.protocol.events import RESERVED
from shared.protocol.frames import BINARY, ws_frame
from shared.subjects import Subjects

log = logging.getLogger(__name__)

Find = Callable[[str], tuple[Outbox, NamespaceSocket] | None]
"""The socket with this sid on this gateway, and the outbox its frames go to."""


@dataclass(frozen=True, slots=True)
class EmitRequest:
    sid: str
    event: str
    args: list[Any]
    """Client values: ``{"$bin": …}`` already turned into ``bytes``."""


def is_event_name(name: object) -> TypeGuard[str]:
    """What a hook reply's ``emit`` allows: 1-128 characters, none of Socket.IO's reserved."""
    return isinstance(name, str) and 0 < len(name) <= EVENT_NAME_MAX and name not in RESERVED


def parse_emit(raw: bytes) -> EmitRequest | dict[str, Any]:
    """The request, or the ``bad_request`` answer naming what is wrong (never raises)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return error_ack(ErrorCode.BAD_REQUEST, "the request is not JSON")
    if not isinstance(body, dict) or not isinstance(body.get("sid"), str):
        return error_ack(ErrorCode.BAD_REQUEST, "expected {sid, event, args}")
    event, args = body.get("event"), body.get("args", [])
    if not is_event_name(event):
        return error_ack(ErrorCode.BAD_REQUEST, "event must be 1-128 characters and not one "
                                                "Socket.IO reserves")
    if not isinstance(args, list):
        return error_ack(ErrorCode.BAD_REQUEST, "args must be a list")
    try:
        values = from_wire(args)
    except ValueError as exc:
        return error_ack(ErrorCode.BAD_REQUEST, f"args: {exc}")
    return EmitRequest(body["sid"], event, values)


def emit_to(socket: NamespaceSocket | None,
            request: EmitRequest) -> tuple[list[Action], dict[str, Any]]:
    """The frames to write and the answer for the router."""
    if socket is None:
        return [], error_ack(ErrorCode.NOT_FOUND, "no socket with this sid on its gateway")
    if socket.pid is not None and request.args and isinstance(request.args[-1], str):
        return [], error_ack(ErrorCode.BAD_REQUEST, "this socket recovers: its client would "
                                                    "take a last string argument for an offset")
    return emit_frames(socket.nsp, [request.event, *request.args]), {"ok": True, "delivered": 1}


def handle(raw: bytes, find: Find) -> dict[str, Any]:
    """One request, start to answer: parse, find, write."""
    request = parse_emit(raw)
    if not isinstance(request, EmitRequest):
        return request
    found = find(request.sid)
    frames, answer = emit_to(found[1] if found else None, request)
    if found is not None and frames and not push(found[0], frames):
        return error_ack(ErrorCode.NOT_FOUND, "the socket is closing")
    return answer


def push(outbox: Outbox, frames: list[Action]) -> bool:
    """Queue the frames (written at the end of the loop pass); ``False`` if the socket is
    closing or over its send budget (which closes it as a slow consumer)."""
    for frame in frames:
        if isinstance(frame, SendText):
            pushed = outbox.push(ws_frame(frame.text.encode()))
        else:
            assert isinstance(frame, SendBinary)
            pushed = outbox.push(ws_frame(frame.data, BINARY))
        if not pushed:
            return False
    return True


async def serve_emits(nc: Client, subjects: Subjects, gateway_id: str, find: Find,
                      moved: Callable[[str], str | None] = lambda _: None) -> None:
    """Answer the router's emits to sockets of this gateway. A socket whose session another
    gateway took over (``moved``: its sid → that gateway) still has a sid naming this one, so
    its emits are asked of the new holder and the answer relayed."""

    async def on_emit(msg: Msg) -> None:
        if not msg.reply:
            return
        request = parse_emit(msg.data)
        holder = None
        if isinstance(request, EmitRequest) and find(request.sid) is None:
            holder = moved(request.sid)
        if holder is not None:
            try:
                answer = await nc.request(subjects.gateway_emit(holder), msg.data, timeout=2.0)
            except (TimeoutError, NatsError):
                await msg.respond(orjson.dumps(error_ack(
                    ErrorCode.UNAVAILABLE, "the gateway holding the socket did not answer")))
                return
            await msg.respond(answer.data)
            return
        await msg.respond(orjson.dumps(handle(msg.data, find)))

    await nc.subscribe(subjects.gateway_emit(gateway_id), cb=on_emit)
