"""Ready-to-write WebSocket frames for server-to-client packets.

The fan-out path encodes a message once and writes the same bytes to every member's
transport, so the server side of RFC 6455 framing (unmasked, single-frame messages, no
extensions) lives here rather than inside the websockets library.
"""

from __future__ import annotations

import struct

TEXT = 0x81
BINARY = 0x82


def ws_frame(payload: bytes, opcode: int = TEXT) -> bytes:
    size = len(payload)
    if size < 126:
        header = bytes((opcode, size))
    elif size < 65536:
        header = struct.pack("!BBH", opcode, 126, size)
    else:
        header = struct.pack("!BBQ", opcode, 127, size)
    return header + payload


def event_prefix(nsp: str, attachments: int = 0) -> bytes:
    """Engine.IO message + Socket.IO EVENT (or BINARY_EVENT) header up to the JSON array."""
    head = "42" if attachments == 0 else f"45{attachments}-"
    if nsp != "/":
        head += nsp + ","
    return head.encode()


def event_frames(nsp: str, args: bytes, attachments: tuple[bytes, ...] = ()) -> bytes:
    """All frames of one server event, joined: the header frame then its attachment frames."""
    frames = [ws_frame(event_prefix(nsp, len(attachments)) + args)]
    frames.extend(ws_frame(blob, BINARY) for blob in attachments)
    return b"".join(frames)


def with_position(args: bytes, seq: int, prev: int, offset: str | None) -> bytes:
    """A logged event's argument array with ``seq``/``prev`` put first into its payload
    object and, for clients that recover, the offset string appended as the last argument.

    Logged bodies are ``["<event>",{...}]`` with an event name free of quotes, so the payload
    object starts at the first ``",{``; splicing bytes keeps the fan-out free of JSON parsing.
    """
    start = args.find(b'",{', 2)
    if start >= 0:
        cut = start + 3
        args = b"%s\"seq\":%d,\"prev\":%d%s%s" % (
            args[:cut], seq, prev, b"," if args[cut : cut + 1] != b"}" else b"", args[cut:])
    if offset is None:
        return args
    return b'%s,"%s"]' % (args[:-1], offset.encode())
