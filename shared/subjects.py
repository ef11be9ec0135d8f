"""Every NATS subject, stream name, KV bucket and KV key Switchboard uses, built from validated
names.

Names reach a subject only through the wire contract's name checks and reversible token
encoding (:mod:`shared.protocol.names`, re-exported here), so no name can add a subject token,
a wildcard or whitespace; namespaces reach one only through their token in the namespace
table (:mod:`shared.namespaces`). A service builds its :class:`Subjects` with the table it
loaded at start-up (``settings.namespaces``), so declared namespaces have subjects too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.namespaces import BUILT_IN, NamespaceTable
from shared.namespaces import namespace_token as namespace_token
from shared.protocol.names import ROOM_NAME_MAX as ROOM_NAME_MAX
from shared.protocol.names import ROOM_NAME_RE as ROOM_NAME_RE
from shared.protocol.names import SUB_MAX as SUB_MAX
from shared.protocol.names import USER_ROOM_PREFIX as USER_ROOM_PREFIX
from shared.protocol.names import decode_token as decode_token
from shared.protocol.names import encode_id as encode_id
from shared.protocol.names import encode_token as encode_token
from shared.protocol.names import is_valid_room_name as is_valid_room_name
from shared.protocol.names import is_valid_sub as is_valid_sub
from shared.protocol.names import user_room as user_room


def kv_subject_prefix(bucket: str) -> str:
    """What a KV bucket's keys are published under (``$KV.<bucket>.``)."""
    return f"$KV.{bucket}."


def kv_stream(bucket: str) -> str:
    """The stream behind a KV bucket."""
    return f"KV_{bucket}"


def direct_get(stream: str, subject: str | None = None) -> str:
    """The direct get API of a stream: batch requests (nats-py has no call for them), or the
    last message of one ``subject``."""
    api = f"$JS.API.DIRECT.GET.{stream}"
    return api if subject is None else f"{api}.{subject}"


def _stream_name(*parts: str) -> str:
    return "_".join(parts).upper().replace("-", "_")


def _key(kind: str, *names: str) -> str:
    """A KV key: its kind, then each name as a token (so no name can add a part)."""
    return ".".join((kind, *(encode_token(name) for name in names)))


# --- KV keys (the buckets are named by :class:`Subjects`) -------------------------------------


def session_key(namespace: str, pid: str) -> str:
    """A recovery session: the namespace's token, then the socket's private id."""
    return f"{namespace_token(namespace)}.{encode_token(pid)}"


def registry_key(user: str) -> str:
    return _key("u", user)


def user_of_registry_key(key: str) -> str:
    """Inverse of :func:`registry_key`; ``ValueError`` for a key it did not make."""
    return decode_token(key.removeprefix("u."))


def gateway_key(gateway: str) -> str:
    """A gateway's liveness key: just its token."""
    return encode_token(gateway)


def presence_record_key(gateway: str, boot: str, conn: str) -> str:
    return _key("c", gateway, boot, conn)


def presence_instance_key(gateway: str, boot: str) -> str:
    """The prefix shared by every socket record of one gateway run."""
    return _key("c", gateway, boot)


def presence_typing_key(room: str, user: str) -> str:
    return _key("t", room, user)


def presence_boot_key(gateway: str) -> str:
    return _key("g", gateway)


def presence_replica_key(replica: str) -> str:
    return _key("r", replica)


@dataclass(frozen=True, slots=True)
class Subjects:
    """Subject builder for one deployment prefix and namespace table (a namespace outside
    the table has no fan-out or log subject: ``ValueError``)."""

    prefix: str = "sb"
    namespaces: NamespaceTable = field(default_factory=lambda: BUILT_IN, compare=False,
                                       repr=False)

    def fanout(self, namespace: str, room: str) -> str:
        """Where a room's messages reach the gateways holding its members."""
        return f"{self.prefix}.fan.{self.namespaces.token(namespace)}.{encode_token(room)}"

    def fanout_wildcard(self, namespace: str) -> str:
        return f"{self.prefix}.fan.{self.namespaces.token(namespace)}.*"

    def log(self, namespace: str, room: str) -> str:
        """Where a durable namespace's room messages are published: its stream captures it."""
        return f"{self.prefix}.log.{self.namespaces.token(namespace)}.{encode_token(room)}"

    def log_wildcard(self, namespace: str) -> str:
        return f"{self.prefix}.log.{self.namespaces.token(namespace)}.*"

    def fanout_from_log(self, namespace: str) -> str:
        """The stream's RePublish destination: the room token moves to the fan-out subject."""
        return f"{self.prefix}.fan.{self.namespaces.token(namespace)}.{{{{wildcard(1)}}}}"

    def room_from_fanout(self, subject: str) -> tuple[str, str] | None:
        """(namespace, room) of a fan-out subject, or ``None`` if it is not one."""
        parts = subject.split(".")
        if len(parts) != 4 or parts[0] != self.prefix or parts[1] != "fan":
            return None
        spec = self.namespaces.by_token(parts[2])
        if spec is None:
            return None
        try:
            return spec.name, decode_token(parts[3])
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

    def gateway_emit(self, gateway_id: str) -> str:
        """Request/reply: ``{"sid", "event", "args"}`` → ``{"ok", "delivered"}`` from the
        gateway a sid names (:mod:`shared.sids`), which writes the event to that socket."""
        return f"{self.prefix}.gw.{encode_token(gateway_id)}.emit"

    def polling_forward(self, gateway_id: str) -> str:
        """Request/reply: a polling request of a session that gateway owns, forwarded by the
        gateway it landed on (method and sid in headers, the body raw)."""
        return f"{self.prefix}.gw.{encode_token(gateway_id)}.poll"

    def session_takeover(self, gateway_id: str) -> str:
        """Request/reply: the sid of a polling session that gateway owns → the whole session,
        for the gateway its upgrade WebSocket landed on (:mod:`gateway.takeover`)."""
        return f"{self.prefix}.gw.{encode_token(gateway_id)}.takeover"

    def hook_connect(self, namespace: str) -> str:
        """The application's connect hook for a namespace (workers subscribe in a queue
        group); the token needs no table, so a worker can build it from the name alone."""
        return f"{self.prefix}.hook.{namespace_token(namespace)}.connect"

    def hook_event(self, namespace: str, event: str) -> str:
        """The application's handler of one client event (``order:place`` →
        ``<prefix>.hook.orders.event.order=3Aplace``)."""
        return f"{self.prefix}.hook.{namespace_token(namespace)}.event.{encode_token(event)}"

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
        return _stream_name(self.prefix, "PRESENCE")

    def lifecycle(self, namespace: str, kind: str) -> str:
        """Where a hooked namespace's connects and disconnects are appended (``kind``:
        ``connect`` or ``disconnect``); the token needs no table."""
        return f"{self.prefix}.lifecycle.{namespace_token(namespace)}.{kind}"

    def lifecycle_wildcard(self) -> str:
        return f"{self.prefix}.lifecycle.>"

    def lifecycle_stream(self) -> str:
        """The stream of those lifecycle events, for backends' own consumers."""
        return _stream_name(self.prefix, "LIFECYCLE")

    # --- room logs (JetStream streams) -------------------------------------------------------

    def log_stream(self, namespace: str) -> str:
        """The stream holding a durable namespace's room log."""
        return _stream_name(self.prefix, self.namespaces.token(namespace))

    def inbox_stream(self) -> str:
        """The stream holding ``/notifications`` messages for offline users."""
        return _stream_name(self.prefix, "INBOX")

    # --- KV buckets and keys ------------------------------------------------------------------

    def session_bucket(self) -> str:
        """Recovery sessions (gateway), one key per namespace socket's private id."""
        return f"{self.prefix}-sessions"

    def registry_bucket(self) -> str:
        """The connection registry: one entry per user."""
        return f"{self.prefix}-registry"

    def gateways_bucket(self) -> str:
        """Gateway liveness: one expiring key per live gateway."""
        return f"{self.prefix}-gateways"

    def presence_bucket(self) -> str:
        """Presence's state: socket records, typing, gateway boots, replica liveness."""
        return f"{self.prefix}-presence"
