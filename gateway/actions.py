"""What the pure session core asks its I/O shell to do.

The core never awaits: it turns one inbound frame (and ``now``) into a list of these, and the
shell performs them in order. Frames the core produces are already encoded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.jwtauth import Identity


@dataclass(eq=False, slots=True)
class NamespaceSocket:
    """One Socket.IO socket: a namespace joined on one Engine.IO connection."""

    nsp: str
    sid: str
    identity: Identity
    rooms: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class AckTo:
    nsp: str
    id: int | None


@dataclass(frozen=True, slots=True)
class SendText:
    text: str


@dataclass(frozen=True, slots=True)
class SendBinary:
    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Opened:
    """A namespace socket was connected (the shell joins its user room)."""

    socket: NamespaceSocket


@dataclass(frozen=True, slots=True)
class Closed:
    """A namespace socket ended; the shell leaves every room it held."""

    socket: NamespaceSocket
    rooms: frozenset[str]


@dataclass(frozen=True, slots=True)
class Join:
    socket: NamespaceSocket
    room: str
    reply: AckTo


@dataclass(frozen=True, slots=True)
class Leave:
    socket: NamespaceSocket
    room: str
    reply: AckTo


@dataclass(frozen=True, slots=True)
class Publish:
    """Publish an event to a room; ``args`` is the encoded Socket.IO argument array."""

    socket: NamespaceSocket
    room: str
    args: bytes
    attachments: tuple[bytes, ...]
    message_id: str | None
    reply: AckTo


CONNECT_EVENT = "connect"


@dataclass(frozen=True, slots=True)
class Observed:
    """An event (or a CONNECT, as :data:`CONNECT_EVENT`) was handled, for metrics;
    ``error`` is the failure code, if any."""

    nsp: str
    event: str
    error: str | None = None


Action = Observed | SendText | SendBinary | Close | Opened | Closed | Join | Leave | Publish
