"""The room log's streams: one per durable namespace and the offline inbox, their
configuration, and the one function that sets them up.

A durable namespace's stream captures ``<prefix>.log.<ns>.<room>`` and republishes each
stored message to the room's fan-out subject with ``Nats-Sequence`` and
``Nats-Last-Sequence``, the server-side per-room prev pointer (``nats-notes.md`` §1).
Gateways own the configuration (replicas, retention) and bring existing streams to it on
start; the router only creates what is missing, so the API works before the first gateway.
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.js.api import RePublish, StorageType, StreamConfig
from nats.js.client import JetStreamContext

from shared.namespaces import BUILT_IN
from shared.natsconn import ensure_stream
from shared.subjects import Subjects

WEEK_S = 7 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class LogSettings:
    """``durable`` names the namespaces with a room log: a service passes its loaded table's
    (``settings.namespaces.durable``); the built-in ones are only the default tests use."""

    durable: frozenset[str] = BUILT_IN.durable
    replicas: int = 1
    duplicate_window_s: float = 120.0
    max_age_s: float = WEEK_S
    max_per_room: int = 10_000
    inbox_max: int = 100
    inbox_max_age_s: float = WEEK_S
    lifecycle: bool = False
    """Whether the lifecycle stream is kept (some namespace has hooks)."""
    lifecycle_max_age_s: float = 24 * 3600.0
    lifecycle_max_bytes: int = 256 * 1024 * 1024


def log_config(subjects: Subjects, settings: LogSettings, nsp: str) -> StreamConfig:
    """A durable namespace's room log."""
    return StreamConfig(
        name=subjects.log_stream(nsp),
        subjects=[subjects.log_wildcard(nsp)],
        storage=StorageType.FILE,
        num_replicas=settings.replicas,
        duplicate_window=settings.duplicate_window_s,
        max_age=settings.max_age_s,
        max_msgs_per_subject=settings.max_per_room,
        allow_direct=True,
        republish=RePublish(src=subjects.log_wildcard(nsp), dest=subjects.fanout_from_log(nsp)),
    )


def inbox_config(subjects: Subjects, settings: LogSettings) -> StreamConfig:
    """The offline inbox: per user, bounded by count and age."""
    return StreamConfig(
        name=subjects.inbox_stream(), subjects=[subjects.inbox_wildcard()],
        storage=StorageType.FILE, num_replicas=settings.replicas,
        max_msgs_per_subject=settings.inbox_max, max_age=settings.inbox_max_age_s,
        allow_direct=True)


def lifecycle_config(subjects: Subjects, settings: LogSettings) -> StreamConfig:
    """Connects and disconnects of hooked namespaces, for backends: bounded by age and size,
    de-duplicated by message id (a gateway's retry of one event counts once)."""
    return StreamConfig(
        name=subjects.lifecycle_stream(), subjects=[subjects.lifecycle_wildcard()],
        storage=StorageType.FILE, num_replicas=settings.replicas,
        max_age=settings.lifecycle_max_age_s, max_bytes=settings.lifecycle_max_bytes,
        duplicate_window=settings.duplicate_window_s)


def stream_configs(subjects: Subjects, settings: LogSettings) -> list[StreamConfig]:
    """Every stream of the room log: the durable namespaces' (sorted), the inbox, and the
    lifecycle stream when some namespace has hooks."""
    configs = [*(log_config(subjects, settings, nsp) for nsp in sorted(settings.durable)),
               inbox_config(subjects, settings)]
    if settings.lifecycle:
        configs.append(lifecycle_config(subjects, settings))
    return configs


async def ensure_streams(js: JetStreamContext, subjects: Subjects, settings: LogSettings,
                         update: bool = True) -> None:
    """Create every stream of the room log that does not exist (idempotent, and safe when
    several processes race). ``update`` also brings existing ones to ``settings``; without
    it a stream that exists with another configuration is left as it is. Raises nats-py's
    errors when NATS cannot answer."""
    for config in stream_configs(subjects, settings):
        await ensure_stream(js, config, update)
