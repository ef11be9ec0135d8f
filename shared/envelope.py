"""The body of a fan-out message on NATS: the encoded Socket.IO argument array, then any
binary attachments.

A message without attachments is just the JSON array, so the receiving gateway frames it with
no parsing at all. JSON text never holds a raw NUL byte, so a NUL after the array marks the
start of the attachments, each as a 4-byte big-endian length and its bytes.
"""

from __future__ import annotations

import struct

_LEN = struct.Struct(">I")


def pack(args: bytes, attachments: tuple[bytes, ...] = ()) -> bytes:
    if not attachments:
        return args
    parts = [args, b"\0"]
    for blob in attachments:
        parts.append(_LEN.pack(len(blob)))
        parts.append(blob)
    return b"".join(parts)


def unpack(body: bytes) -> tuple[bytes, tuple[bytes, ...]] | None:
    """Split a body into (args, attachments); ``None`` if it is malformed."""
    split = body.find(b"\0")
    if split < 0:
        return body, ()
    args, rest, attachments = body[:split], memoryview(body)[split + 1 :], []
    while rest:
        if len(rest) < _LEN.size:
            return None
        (size,) = _LEN.unpack(rest[: _LEN.size])
        blob = rest[_LEN.size : _LEN.size + size]
        if len(blob) != size:
            return None
        attachments.append(bytes(blob))
        rest = rest[_LEN.size + size :]
    return args, tuple(attachments)


_TS = b'"ts":'


def stamp_ms(args: bytes) -> int | None:
    """The ``ts`` (ms) the publishing gateway put in a message, read without parsing the JSON:
    the first ``"ts":`` followed by digits (a key; inside a string value its quotes would be
    escaped). ``None`` when there is none, as in events published by backends."""
    at = args.find(_TS)
    if at < 0:
        return None
    start = end = at + len(_TS)
    while end < len(args) and args[end] in b"0123456789" and end - start < 16:
        end += 1
    return int(args[start:end]) if end > start else None
