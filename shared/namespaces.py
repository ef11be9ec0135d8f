"""The namespace table: every namespace a deployment serves and its properties, as data.

Each service derives what it needs from this one table instead of keeping its own list:
subjects and stream names (the namespace's token), which namespaces have a room log
(``durable``), presence, the offline inbox, and which built-in client events a namespace
serves. The keys and defaults are those of DESIGN.md's "Application namespaces and handlers"
table; the built-in four are declared here and the namespaces a deployment declares in its
``SB_NAMESPACES_FILE`` are merged in by :mod:`shared.namespaces_file`.

There is no module-level "current" table: each service loads its table once at start-up (it
is ``settings.namespaces``) and hands it, or the sets derived from it, to whatever needs it,
so no part can keep an import-time copy of the built-in four.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from shared.protocol import events
from shared.protocol.names import encode_token

Auth = Literal["jwt", "hook"]
ROOT_TOKEN = "root"


@dataclass(frozen=True, slots=True)
class NamespaceSpec:
    """One namespace. ``client_events`` names the built-in client events it serves; ``None``
    derives them as DESIGN.md does for a declared namespace (see :func:`builtin_events`)."""

    name: str
    durable: bool = False
    presence: bool = False
    inbox: bool = False
    auth: Auth = "jwt"
    hooks: bool = False
    hook_timeout_ms: int = 2000
    hook_concurrency: int = 1
    hook_headers: tuple[str, ...] = ()
    event_rate: float = 100.0
    event_burst: int = 100
    client_events: frozenset[str] | None = None

    @property
    def token(self) -> str:
        return namespace_token(self.name)


def namespace_token(name: str) -> str:
    """A namespace's subject token: its name without the leading ``/``, encoded (``root``
    for ``/``). A name alone decides it, so keys built from it need no table."""
    bare = name.removeprefix("/")
    return encode_token(bare) if bare else ROOT_TOKEN


def builtin_events(spec: NamespaceSpec) -> frozenset[str]:
    """The built-in client events ``spec`` serves: joins, leaves and sends always, history
    when durable, presence and typing when presence is on (unless the spec lists them)."""
    if spec.client_events is not None:
        return spec.client_events
    found = {events.ROOM_JOIN, events.ROOM_LEAVE, events.MESSAGE_SEND}
    if spec.durable:
        found.add(events.ROOM_HISTORY)
    if spec.presence:
        found |= {events.ROOM_PRESENCE, events.TYPING_START, events.TYPING_STOP}
    return frozenset(found)


class NamespaceTable(Mapping[str, NamespaceSpec]):
    """Namespace name → spec, with the sets every service asks for computed once."""

    def __init__(self, specs: Iterable[NamespaceSpec]) -> None:
        by_name = {spec.name: spec for spec in specs}
        self._specs = MappingProxyType(by_name)
        self._by_token = {spec.token: spec for spec in by_name.values()}
        if len(self._by_token) != len(by_name):
            raise ValueError("two namespaces share a subject token")
        self.durable = frozenset(n for n, s in by_name.items() if s.durable)
        self.presence = frozenset(n for n, s in by_name.items() if s.presence)
        self.inbox = frozenset(n for n, s in by_name.items() if s.inbox)

    def __getitem__(self, name: str) -> NamespaceSpec:
        return self._specs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def token(self, name: str) -> str:
        """The subject token of a namespace of the table; ``ValueError`` for any other."""
        spec = self._specs.get(name)
        if spec is None:
            raise ValueError(f"unknown namespace {name!r}")
        return spec.token

    def by_token(self, token: str) -> NamespaceSpec | None:
        return self._by_token.get(token)

    def merged(self, declared: Iterable[NamespaceSpec]) -> NamespaceTable:
        """This table with ``declared`` added, a declared spec replacing a built-in one of
        the same name (how a namespaces file will change a built-in's keys)."""
        return NamespaceTable([*self._specs.values(), *declared])


BUILT_IN = NamespaceTable([
    NamespaceSpec("/", client_events=frozenset()),
    NamespaceSpec("/chat", durable=True, presence=True),
    NamespaceSpec("/notifications", durable=True, inbox=True, client_events=frozenset()),
    NamespaceSpec("/live-updates",
                  client_events=frozenset({events.ROOM_JOIN, events.ROOM_LEAVE})),
])
"""The four namespaces of the public contract."""

FIXED_FOR_BUILT_IN = ("durable", "presence")
"""Keys a namespaces file may not change for a built-in namespace."""

INBOX_NAMESPACE = next(iter(BUILT_IN.inbox))
"""The namespace whose per-user messages wait in the offline inbox (a file cannot add one:
``inbox`` is not a key it may set)."""
DEFAULT_PRESENCE_NAMESPACE = "/chat"
"""The namespace a presence query without one asks about (the API's default)."""
