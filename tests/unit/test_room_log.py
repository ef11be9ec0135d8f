"""The room log's pure parts: stream configurations, message ids, raw direct-get replies and
header parsing; and that only gateways import gateway code (the router reaches the log through
``shared.room_log``). The I/O runs against a real nats-server in the broker contract suite."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from nats.js.api import StreamConfig
from nats.js.errors import BadRequestError

from shared.light_client import header_int
from shared.namespaces import BUILT_IN
from shared.request_mux import Reply
from shared.room_log import (
    LogUnavailable,
    Stored,
    api_message_id,
    client_message_id,
    inbox_message_id,
)
from shared.room_log.nats_log import stored_messages
from shared.room_log.streams import LogSettings, ensure_streams, stream_configs
from shared.subjects import Subjects

ROOT = Path(__file__).parents[2]
EOB = b"NATS/1.0 204 EOB\r\n\r\n"


def test_one_stream_per_durable_namespace_then_the_inbox() -> None:
    subjects = Subjects("sb")
    configs = stream_configs(subjects, LogSettings(replicas=3))
    assert [c.name for c in configs] == ["SB_CHAT", "SB_NOTIFICATIONS", "SB_INBOX"]
    chat = configs[0]
    assert chat.subjects == ["sb.log.chat.*"]
    assert chat.republish is not None
    assert chat.republish.dest == "sb.fan.chat.{{wildcard(1)}}"
    assert chat.allow_direct and chat.num_replicas == 3
    assert configs[-1].subjects == ["sb.inbox.*"]
    assert len(configs) == len(BUILT_IN.durable) + 1


def test_settings_reach_the_configuration() -> None:
    settings = LogSettings(duplicate_window_s=5.0, max_per_room=7, inbox_max=3)
    chat, _, inbox = stream_configs(Subjects("x-y"), settings)
    assert (chat.name, chat.duplicate_window, chat.max_msgs_per_subject) == ("X_Y_CHAT", 5.0, 7)
    assert inbox.max_msgs_per_subject == 3


def test_message_ids_cannot_be_confused_across_users_or_rooms() -> None:
    assert client_message_id("alice", "m1") == "alice.m1"
    assert client_message_id("a.b", "c") != client_message_id("a", "b.c")
    assert api_message_id("room:a", "k") == "api:room=3Aa:k"
    assert inbox_message_id("a.b", 7) == "inbox.a=2Eb.7"


def test_stored_messages_until_the_end_of_batch() -> None:
    replies = [Reply(b"one", b"NATS/1.0\r\nNats-Sequence: 4\r\n\r\n"),
               Reply(b"two", b"NATS/1.0\r\nNats-Sequence: 9\r\n\r\n"), Reply(b"", EOB)]
    assert stored_messages(replies) == [Stored(4, b"one"), Stored(9, b"two")]
    assert stored_messages([Reply(b"", b"NATS/1.0 404 No Messages\r\n\r\n")]) == []


@pytest.mark.parametrize("replies", [
    [Reply(b"", b"NATS/1.0 503\r\n\r\n")],
    [Reply(b"x", b"NATS/1.0\r\n\r\n"), Reply(b"", EOB)],
])
def test_a_failed_or_unreadable_read_is_unavailable(replies: list[Reply]) -> None:
    with pytest.raises(LogUnavailable):
        stored_messages(replies)


def test_header_int() -> None:
    block = b"NATS/1.0\r\nNats-Sequence: 12\r\nNats-Last-Sequence: x\r\n\r\n"
    assert header_int(block, b"\r\nNats-Sequence: ") == 12
    assert header_int(block, b"\r\nNats-Last-Sequence: ") is None
    assert header_int(block, b"\r\nMissing: ") is None
    assert header_int(b"NATS/1.0\r\nA: 5", b"\r\nA: ") == 5


def _imports(folder: str) -> set[tuple[str, str]]:
    found = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            found |= {(str(path.relative_to(ROOT)), name) for name in names}
    return found


@pytest.mark.parametrize("folder", ["router", "presence", "shared"])
def test_only_gateways_import_gateway_code(folder: str) -> None:
    assert not {(p, m) for p, m in _imports(folder) if m.split(".")[0] == "gateway"}


def test_a_light_client_that_is_not_connected_sends_nothing() -> None:
    from shared.light_client import LightClient

    with pytest.raises(LogUnavailable, match="not connected"):
        LightClient().publish_nowait("sb.x", b"body")


class FakeJetStream:
    """Streams by name; adding one that exists with another configuration is refused, as
    the server does."""

    def __init__(self) -> None:
        self.streams: dict[str, object] = {}
        self.updates: list[str] = []

    async def add_stream(self, config: StreamConfig) -> None:
        assert config.name is not None
        if self.streams.get(config.name, config) != config:
            raise BadRequestError()
        self.streams[config.name] = config

    async def update_stream(self, config: StreamConfig) -> None:
        assert config.name is not None
        self.streams[config.name] = config
        self.updates.append(config.name)


async def test_setup_creates_every_stream_then_updates_or_keeps_them() -> None:
    js = FakeJetStream()
    subjects = Subjects("sb")
    await ensure_streams(js, subjects, LogSettings())  # type: ignore[arg-type]
    assert sorted(js.streams) == ["SB_CHAT", "SB_INBOX", "SB_NOTIFICATIONS"]

    await ensure_streams(js, subjects, LogSettings(replicas=3),  # type: ignore[arg-type]
                         update=False)
    assert js.updates == []  # the router leaves what gateways configured alone

    await ensure_streams(js, subjects, LogSettings(replicas=3))  # type: ignore[arg-type]
    assert sorted(js.updates) == ["SB_CHAT", "SB_INBOX", "SB_NOTIFICATIONS"]
