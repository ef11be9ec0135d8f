"""Engine.IO v4 over WebSocket: one packet per frame, pure encode/decode.

Over WebSocket a text frame is ``<type digit><data>`` and a binary frame is a ``message``
carrying raw bytes (no type byte). ``b<base64>`` text frames are binary messages too.
Nothing here raises on input from the network: :func:`parse_frame` returns an
:class:`InvalidFrame` instead.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from enum import IntEnum

import orjson


class EioType(IntEnum):
    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


@dataclass(frozen=True, slots=True)
class EioPacket:
    type: EioType
    data: str | bytes = ""


@dataclass(frozen=True, slots=True)
class InvalidFrame:
    detail: str


PING_FRAME = "2"
PONG_FRAME = "3"
MESSAGE_PREFIX = "4"


def encode_open(sid: str, ping_interval_ms: int, ping_timeout_ms: int, max_payload: int,
                upgrades: tuple[str, ...] = ()) -> str:
    """The open packet: a polling session lists ``websocket`` as its upgrade, a WebSocket
    session none."""
    body = {
        "sid": sid,
        "upgrades": list(upgrades),
        "pingInterval": ping_interval_ms,
        "pingTimeout": ping_timeout_ms,
        "maxPayload": max_payload,
    }
    return "0" + orjson.dumps(body).decode()


def parse_frame(frame: str | bytes) -> EioPacket | InvalidFrame:
    """Decode one WebSocket frame into an Engine.IO packet."""
    if isinstance(frame, bytes):
        return EioPacket(EioType.MESSAGE, frame)
    if not frame:
        return InvalidFrame("empty frame")
    head = frame[0]
    if head == "b":
        try:
            return EioPacket(EioType.MESSAGE, base64.b64decode(frame[1:], validate=True))
        except (binascii.Error, ValueError):
            return InvalidFrame("bad base64 binary frame")
    if not "0" <= head <= "6":
        return InvalidFrame(f"unknown packet type {head!r}")
    return EioPacket(EioType(int(head)), frame[1:])
