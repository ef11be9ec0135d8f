"""What the pure session core asks its I/O shell to do.

The core never awaits: it turns one inbound frame (and ``now``) into a list of these, and the
shell performs them in order. Frames the core produces are already encoded.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from shared.jwtauth import Identity
from shared.ratelimit import TokenBucket


@dataclass(eq=False, slots=True)
class NamespaceSocket:
    """One Socket.IO socket: a namespace joined on one Engine.IO connection."""

    nsp: str
    sid: str
    identity: Identity
    rooms: set[str] = field(default_factory=set)
    pid: str | None = None
    """Recovery session id (durable namespaces, unless the client opted out)."""
    durable: bool = False
    typing: dict[str, float] = field(default_factory=dict)
    """When a ``typing:start`` was last published per room (repeats are coalesced)."""
    data: Any = None
    """The application's session data (from its connect or event replies), sent with every
    later hook request."""
    hook_bucket: TokenBucket | None = None
    hook_in_flight: int = 0
    hook_waiting: deque[HookCall] | None = None
    """Hook requests past the namespace's ``hook_concurrency``, in the order sent."""
    hook_emit: list[list[Any]] | None = None
    """Events the connect hook asked for, sent right after the CONNECT reply."""


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
class Restore:
    """What a reconnecting client sent to recover its session."""

    pid: str
    offset: str | None


@dataclass(frozen=True, slots=True)
class Recovered:
    """A session the shell found, saved and read the replay of: the socket takes its ids and
    rooms back (the replay is written after its CONNECT reply)."""

    pid: str
    sid: str
    rooms: frozenset[str]


class JoinFailure(Enum):
    """Why the shell could not carry a :class:`Join` out; the core words the answer."""

    UNAVAILABLE = "unavailable"
    """The bus or the log did not answer: worth a retry."""
    BACKLOG_TOO_LARGE = "backlog_too_large"
    """The replay after ``since`` would not fit the send budget: page it instead."""


@dataclass(frozen=True, slots=True)
class Opened:
    """A namespace socket was connected. The shell joins its user room; in a durable
    namespace it also saves (or restores) the session and only then sends the CONNECT reply."""

    socket: NamespaceSocket
    restore: Restore | None = None


@dataclass(frozen=True, slots=True)
class Announce:
    """The socket is in (or its rooms changed): the shell tells the presence service, which
    ignores namespaces without presence."""

    socket: NamespaceSocket


@dataclass(frozen=True, slots=True)
class Closed:
    """A namespace socket ended (the core has emptied its rooms): the shell leaves every
    room it held and tells the presence service it went."""

    socket: NamespaceSocket
    rooms: frozenset[str]
    final: bool = False
    """The client left the namespace (or was kicked): its session is not recoverable."""


@dataclass(frozen=True, slots=True)
class Join:
    socket: NamespaceSocket
    room: str
    reply: AckTo
    since: int | None = None


@dataclass(frozen=True, slots=True)
class History:
    socket: NamespaceSocket
    room: str
    reply: AckTo
    since: int | None
    before: int | None
    limit: int


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
    logged: bool = False
    after: HookFinish | None = None
    """A hook reply's publish: what of the reply is left once its publishes are answered."""


@dataclass(frozen=True, slots=True)
class TypingChange:
    """A socket started or stopped typing in a room (already coalesced by the handler)."""

    socket: NamespaceSocket
    room: str
    active: bool
    reply: AckTo


@dataclass(frozen=True, slots=True)
class PresenceQuery:
    """``room:presence``: the presence service answers with the room's members."""

    socket: NamespaceSocket
    room: str
    reply: AckTo


class HookFailure(Enum):
    """A hook request that got no reply from the application."""

    UNAVAILABLE = "unavailable"
    """No worker subscribed (the NATS no-responders status), or nothing could be sent."""
    TIMEOUT = "timeout"
    OVERLOADED = "overloaded"
    """The gateway's ``SB_HOOK_MAX_IN_FLIGHT`` was reached: not sent."""


@dataclass(eq=False, slots=True)
class HookCall:
    """Ask the application: ``event`` ``None`` is the namespace's connect hook. The shell
    feeds the reply (or a :class:`HookFailure`) back with ``Session.hook_answered``."""

    nsp: str
    event: str | None
    body: bytes
    timeout_ms: int
    socket: NamespaceSocket | None = None
    reply: AckTo | None = None


@dataclass(eq=False, slots=True)
class HookFinish:
    """The ack, emits and disconnect of an event reply, due once its ``pending`` publishes
    are answered (``failed`` if one was not confirmed)."""

    socket: NamespaceSocket
    reply: AckTo
    ack: list[Any]
    emit: list[list[Any]]
    disconnect: bool
    pending: int
    failed: bool = False


@dataclass(frozen=True, slots=True)
class HookObserved:
    """A hook request's outcome, for metrics (``kind`` connect/event)."""

    nsp: str
    kind: str
    event: str
    outcome: str


CONNECT_EVENT = "connect"


@dataclass(frozen=True, slots=True)
class Observed:
    """An event (or a CONNECT, as :data:`CONNECT_EVENT`) was handled, for metrics;
    ``error`` is the failure code, if any."""

    nsp: str
    event: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """A request failed once its I/O was done, for metrics (its :class:`Observed` was
    counted when it arrived)."""

    nsp: str
    error: str


Action = (Observed | Failed | SendText | SendBinary | Close | Opened | Announce | Closed | Join
          | Leave | Publish | History | TypingChange | PresenceQuery | HookCall | HookObserved)
