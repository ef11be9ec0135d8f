"""Name checks and the one reversible token encoding: the part of the wire contract that
decides which names reach a subject or a KV key, and how.

Room names from clients are checked against the contract's alphabet before anything else;
names that may hold any character (a JWT ``sub`` inside ``user:<sub>``) go through one
reversible token encoding, so no name can add a subject token, a wildcard or whitespace.
The encoding keeps ``[A-Za-z0-9_-]`` as is and writes every other UTF-8 byte as ``=HH``; the
result is a valid NATS subject token *and* a valid KV key. It lives in the wire contract
(which imports nothing outside itself) because recovery offsets carry encoded room names and
workers in other languages decode hook subjects with it; :mod:`shared.subjects` builds every
subject from it.
"""

from __future__ import annotations

import binascii
import functools
import re

ROOM_NAME_RE = re.compile(r"[A-Za-z0-9_:@-]{1,128}")
ROOM_NAME_MAX = 128
SUB_MAX = 128
USER_ROOM_PREFIX = "user:"
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]*(?:=[0-9A-F]{2}[A-Za-z0-9_-]*)+")
_ALL_SAFE = re.compile(r"[A-Za-z0-9_-]+")
_ASCII_ESCAPES = [chr(byte) if byte in _SAFE else f"={byte:02X}" for byte in range(128)]


def is_valid_room_name(name: object) -> bool:
    """The contract's rule for room names that come from clients."""
    return isinstance(name, str) and ROOM_NAME_RE.fullmatch(name) is not None


def is_valid_sub(sub: object) -> bool:
    return isinstance(sub, str) and 0 < len(sub) <= SUB_MAX


def user_room(sub: str) -> str:
    """The room every socket of user ``sub`` joins on connect."""
    return USER_ROOM_PREFIX + sub


def encode_id(name: str) -> str:
    """Encode any non-empty string as one subject token / KV key part / header value
    (reversible); see :func:`encode_token` for names that repeat."""
    if not name:
        raise ValueError("empty names have no token")
    if _ALL_SAFE.fullmatch(name):
        return name
    if name.isascii():
        return name.translate(_ASCII_ESCAPES)
    out: list[str] = []
    for byte in name.encode("utf-8", "surrogatepass"):
        out.append(chr(byte) if byte in _SAFE else f"={byte:02X}")
    return "".join(out)


encode_token = functools.lru_cache(maxsize=8192)(encode_id)
""":func:`encode_id`, cached: the same user and room names are encoded on every publish."""


def decode_token(token: str) -> str:
    """Inverse of :func:`encode_token`; raises ``ValueError`` on a token it did not make."""
    if _ALL_SAFE.fullmatch(token):
        return token
    if not _TOKEN_RE.fullmatch(token):
        raise ValueError("not an encoded token")
    name = binascii.a2b_qp(token).decode("utf-8", "surrogatepass")
    if encode_token(name) != token:
        raise ValueError("not the canonical encoding of any name")
    return name

