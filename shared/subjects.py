"""Every NATS subject and KV key Switchboard uses, built from validated names.

Room names from clients are checked against the contract's alphabet before anything else;
names that may hold any character (a JWT ``sub`` inside ``user:<sub>``) go through one
reversible token encoding, so no name can add a subject token, a wildcard or whitespace.
The encoding keeps ``[A-Za-z0-9_-]`` as is and writes every other UTF-8 byte as ``=HH``; the
result is a valid NATS subject token *and* a valid KV key.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

ROOM_NAME_RE = re.compile(r"[A-Za-z0-9_:@-]{1,128}")
ROOM_NAME_MAX = 128
SUB_MAX = 128
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_TOKEN_RE = re.compile(r"(?:[A-Za-z0-9_-]|=[0-9A-F]{2})+")
_ALL_SAFE = re.compile(r"[A-Za-z0-9_-]+")
USER_ROOM_PREFIX = "user:"

NAMESPACE_TOKENS: dict[str, str] = {
    "/": "root",
    "/chat": "chat",
    "/notifications": "notifications",
    "/live-updates": "live-updates",
}


def is_valid_room_name(name: object) -> bool:
    """The contract's rule for room names that come from clients."""
    return isinstance(name, str) and ROOM_NAME_RE.fullmatch(name) is not None


def is_valid_sub(sub: object) -> bool:
    return isinstance(sub, str) and 0 < len(sub) <= SUB_MAX


def encode_id(name: str) -> str:
    """Encode any non-empty string as one subject token / KV key part / header value
    (reversible); see :func:`encode_token` for names that repeat."""
    if not name:
        raise ValueError("empty names have no token")
    if _ALL_SAFE.fullmatch(name):
        return name
    out: list[str] = []
    for byte in name.encode("utf-8", "surrogatepass"):
        out.append(chr(byte) if byte in _SAFE else f"={byte:02X}")
    return "".join(out)


encode_token = functools.lru_cache(maxsize=8192)(encode_id)
""":func:`encode_id`, cached: the same user and room names are encoded on every publish."""


def decode_token(token: str) -> str:
    """Inverse of :func:`encode_token`; raises ``ValueError`` on a token it did not make."""
    if not _TOKEN_RE.fullmatch(token):
        raise ValueError("not an encoded token")
    raw = bytearray()
    index = 0
    while index < len(token):
        char = token[index]
        if char == "=":
            raw.append(int(token[index + 1 : index + 3], 16))
            index += 3
        else:
            raw.append(ord(char))
            index += 1
    name = raw.decode("utf-8", "surrogatepass")
    if encode_token(name) != token:
        raise ValueError("not the canonical encoding of any name")
    return name


def user_room(sub: str) -> str:
    return USER_ROOM_PREFIX + sub


def namespace_token(namespace: str) -> str:
    try:
        return NAMESPACE_TOKENS[namespace]
    except KeyError:
        raise ValueError(f"unknown namespace {namespace!r}") from None


@dataclass(frozen=True, slots=True)
class Subjects:
    """Subject builder for one deployment prefix."""

    prefix: str = "sb"

    def fanout(self, namespace: str, room: str) -> str:
        """Where a room's messages reach the gateways holding its members."""
        return f"{self.prefix}.fan.{namespace_token(namespace)}.{encode_token(room)}"

    def fanout_wildcard(self, namespace: str) -> str:
        return f"{self.prefix}.fan.{namespace_token(namespace)}.*"

    def log(self, namespace: str, room: str) -> str:
        """Where a durable namespace's room messages are published: its stream captures it."""
        return f"{self.prefix}.log.{namespace_token(namespace)}.{encode_token(room)}"

    def log_wildcard(self, namespace: str) -> str:
        return f"{self.prefix}.log.{namespace_token(namespace)}.*"

    def fanout_from_log(self, namespace: str) -> str:
        """The stream's RePublish destination: the room token moves to the fan-out subject."""
        return f"{self.prefix}.fan.{namespace_token(namespace)}.{{{{wildcard(1)}}}}"

    def room_from_fanout(self, subject: str) -> tuple[str, str] | None:
        """(namespace, room) of a fan-out subject, or ``None`` if it is not one."""
        parts = subject.split(".")
        if len(parts) != 4 or parts[0] != self.prefix or parts[1] != "fan":
            return None
        namespace = next((ns for ns, tok in NAMESPACE_TOKENS.items() if tok == parts[2]), None)
        if namespace is None:
            return None
        try:
            return namespace, decode_token(parts[3])
        except ValueError:
            return None

    def inbox(self, user: str) -> str:
        """A user's offline inbox for ``/notifications`` (one subject per user)."""
        return f"{self.prefix}.inbox.{encode_token(user)}"

    def inbox_wildcard(self) -> str:
        return f"{self.prefix}.inbox.*"

    def gateway_kick(self, gateway_id: str) -> str:
        """Request/reply: ``{"user", "reason"}`` → ``{"kicked": n}`` from that gateway."""
        return f"{self.prefix}.gw.{encode_token(gateway_id)}.kick"

    def api(self, operation: str) -> str:
        """The server API over NATS (queue group ``router``): publish, send, connections,
        kick, presence."""
        return f"{self.prefix}.api.{encode_token(operation)}"

    def presence_events(self) -> str:
        """Gateways' socket records and typing notices; a work-queue stream captures it."""
        return f"{self.prefix}.presence.in"

    def presence_query(self) -> str:
        """Request/reply (queue group ``presence``): ``{"namespace", "room"}`` → members."""
        return f"{self.prefix}.presence.query"

    def presence_stream(self) -> str:
        return f"{self.prefix}_PRESENCE".upper().replace("-", "_")
