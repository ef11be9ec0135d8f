"""SB_NAMESPACES_FILE: declared namespaces get the design table's defaults, a built-in one may
change only the keys the table allows, and every mistake is a typed error naming the
namespace and the key; the settings load the file once and fail with the variable named."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.namespaces import build
from router.requests import Publish, parse
from shared.config import ConfigError, GatewaySettings, RouterSettings, load
from shared.namespaces import BUILT_IN
from shared.namespaces_file import NamespacesFileError, load_namespaces, parse_namespaces
from shared.protocol import events
from shared.room_log.streams import LogSettings, stream_configs
from shared.subjects import Subjects

EXAMPLE = """
[namespaces."/orders"]
durable = true
presence = true
auth = "hook"
hooks = true
hook_timeout_ms = 500
hook_concurrency = 4
hook_headers = ["X-Api-Key", "user-agent", "x-api-key"]
event_rate = 2.5
event_burst = 5

[namespaces."/feed"]

[namespaces."/chat"]
hooks = true
durable = true
"""


def error_of(text: str) -> NamespacesFileError:
    with pytest.raises(NamespacesFileError) as caught:
        parse_namespaces(text)
    return caught.value


def test_declared_keys_are_kept_and_the_rest_defaulted() -> None:
    table = parse_namespaces(EXAMPLE)
    orders, feed = table["/orders"], table["/feed"]
    assert (orders.durable, orders.presence, orders.auth, orders.hooks) == (True, True, "hook",
                                                                            True)
    assert (orders.hook_timeout_ms, orders.hook_concurrency) == (500, 4)
    assert orders.hook_headers == ("x-api-key", "user-agent")
    assert (orders.event_rate, orders.event_burst) == (2.5, 5)
    assert (feed.durable, feed.presence, feed.auth, feed.hooks) == (False, False, "jwt", False)
    assert (feed.hook_timeout_ms, feed.hook_concurrency, feed.hook_headers) == (2000, 1, ())
    assert (feed.event_rate, feed.event_burst) == (100.0, 100)
    assert list(table) == [*BUILT_IN, "/orders", "/feed"]
    assert table.durable == BUILT_IN.durable | {"/orders"}
    assert table.presence == BUILT_IN.presence | {"/orders"}


def test_an_empty_file_is_the_built_in_table() -> None:
    assert dict(parse_namespaces("")) == dict(BUILT_IN)
    assert dict(parse_namespaces("# nothing declared\n[namespaces]\n")) == dict(BUILT_IN)


def test_a_built_in_namespace_changes_only_what_the_table_allows() -> None:
    table = parse_namespaces('[namespaces."/"]\nauth = "hook"\nhooks = true\n'
                             '[namespaces."/notifications"]\ndurable = true\npresence = false\n')
    root, notifications = table["/"], table["/notifications"]
    assert root.auth == "hook" and root.hooks and root.client_events == frozenset()
    assert notifications.inbox and notifications.durable
    assert table["/chat"] == BUILT_IN["/chat"]


@pytest.mark.parametrize(("name", "key", "value", "fixed"), [
    ("/chat", "durable", "false", "true"),
    ("/chat", "presence", "false", "true"),
    ("/live-updates", "durable", "true", "false"),
    ("/", "presence", "true", "false"),
])
def test_a_built_in_durable_or_presence_is_fixed(name: str, key: str, value: str,
                                                 fixed: str) -> None:
    error = error_of(f'[namespaces."{name}"]\n{key} = {value}\n')
    assert (error.namespace, error.key) == (name, key)
    assert f"fixed at {fixed}" in str(error) and repr(key) in str(error)


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("durable", '"yes"', "expected true or false"),
    ("presence", "1", "expected true or false"),
    ("hooks", "[]", "expected true or false"),
    ("auth", '"token"', 'expected "jwt" or "hook"'),
    ("auth", "true", 'expected "jwt" or "hook"'),
    ("hook_timeout_ms", "0", "between 1 and 300_000"),
    ("hook_timeout_ms", "300001", "between 1 and 300_000"),
    ("hook_timeout_ms", "1.5", "expected an integer"),
    ("hook_timeout_ms", "true", "expected an integer"),
    ("hook_concurrency", "0", "between 1 and 1_000"),
    ("hook_concurrency", '"2"', "expected an integer"),
    ("hook_headers", '"x-api-key"', "expected an array of header names"),
    ("hook_headers", "[1]", "expected an array of header names"),
    ("hook_headers", '["bad header"]', "not an HTTP header name"),
    ("hook_headers", str([f"h{i}" for i in range(33)]), "at most 32"),
    ("event_rate", "0", "more than 0"),
    ("event_rate", "-1.0", "more than 0"),
    ("event_rate", "inf", "more than 0"),
    ("event_rate", "nan", "more than 0"),
    ("event_rate", "false", "expected a number"),
    ("event_burst", "0", "between 1 and 100_000"),
    ("event_burst", "2.0", "expected an integer"),
    ("colour", '"blue"', "unknown key"),
    ("hook_timeout", "100", "unknown key"),
])
def test_every_bad_key_is_named_with_its_problem(key: str, value: str, problem: str) -> None:
    error = error_of(f'[namespaces."/orders"]\n{key} = {value}\n')
    assert (error.namespace, error.key) == ("/orders", key)
    assert problem in error.problem
    assert str(error).startswith(f"namespace '/orders', key '{key}': ")
    assert "\n" not in str(error)


@pytest.mark.parametrize("name", ["orders", "//x", "/a.b", "/a b", "/" + "x" * 65, "/é", ""])
def test_a_bad_name_is_named(name: str) -> None:
    error = error_of(f'[namespaces."{name}"]\n')
    assert error.namespace == name and error.key is None
    assert "1-64 characters of [A-Za-z0-9_-]" in str(error)


def test_the_longest_name_is_allowed() -> None:
    name = "/" + "x" * 64
    assert parse_namespaces(f'[namespaces."{name}"]\n')[name].token == "x" * 64


@pytest.mark.parametrize(("text", "culprit", "problem"), [
    ('[namespaces."/root"]\n', "/root", "subject token 'root' is already that of namespace '/'"),
    ('[namespaces."/Chat"]\ndurable = true\n', "/Chat", "SB_CHAT is already that of "
                                                        "namespace '/chat'"),
    ('[namespaces."/a-b"]\ndurable = true\n[namespaces."/a_b"]\ndurable = true\n', "/a_b",
     "SB_A_B is already that of namespace '/a-b'"),
    ('[namespaces."/inbox"]\ndurable = true\n', "/inbox", "the offline inbox"),
    ('[namespaces."/presence"]\ndurable = true\n', "/presence", "the presence queue"),
])
def test_a_name_collision_names_the_namespace(text: str, culprit: str, problem: str) -> None:
    error = error_of(text)
    assert error.namespace == culprit and problem in str(error)


def test_ephemeral_names_that_differ_only_in_case_are_distinct() -> None:
    table = parse_namespaces('[namespaces."/Chat"]\n[namespaces."/inbox"]\n')
    assert table.token("/Chat") == "Chat" and "/inbox" not in table.durable


@pytest.mark.parametrize(("text", "problem"), [
    ("[namespaces\n", "not valid TOML"),
    ('[namespaces."/a"]\ndurable = true\ndurable = false\n', "not valid TOML"),
    ('[other]\nx = 1\n', "unknown top-level key 'other'"),
    ('namespaces = 3\n', '"namespaces" must hold'),
    ('[namespaces]\n"/a" = 1\n', "expected a table of keys"),
])
def test_a_bad_document_says_what_is_wrong(text: str, problem: str) -> None:
    error = error_of(text)
    assert problem in str(error) and "\n" not in str(error)


def test_a_missing_or_binary_file_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(NamespacesFileError, match="cannot read the file"):
        load_namespaces(tmp_path / "absent.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(NamespacesFileError, match="not UTF-8"):
        load_namespaces(binary)


def test_the_settings_load_the_file_once_for_every_service(tmp_path: Path) -> None:
    path = tmp_path / "namespaces.toml"
    path.write_text(EXAMPLE)
    env = {"SB_JWT_SECRET": "s" * 32, "SB_API_KEY": "k", "SB_NAMESPACES_FILE": str(path)}
    assert "/orders" in load(GatewaySettings, env).namespaces
    assert load(RouterSettings, env).namespaces.durable == BUILT_IN.durable | {"/orders"}
    assert load(GatewaySettings, {"SB_JWT_SECRET": "s" * 32}).namespaces is BUILT_IN


def test_a_bad_file_stops_the_settings_naming_variable_file_namespace_and_key(
        tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[namespaces."/orders"]\nevent_burst = "many"\n')
    with pytest.raises(ConfigError) as caught:
        load(GatewaySettings, {"SB_JWT_SECRET": "s" * 32, "SB_NAMESPACES_FILE": str(path)})
    message = str(caught.value)
    assert message.startswith(f"SB_NAMESPACES_FILE={str(path)!r}: namespace '/orders', "
                              "key 'event_burst': expected an integer")


def test_what_each_service_derives_sees_the_declared_namespaces() -> None:
    table = parse_namespaces(EXAMPLE)
    subjects = Subjects("sb", table)
    assert subjects.fanout("/orders", "room:a") == "sb.fan.orders.room=3Aa"
    assert subjects.room_from_fanout("sb.fan.feed.room=3Aa") == ("/feed", "room:a")
    names = [c.name for c in stream_configs(subjects, LogSettings(durable=table.durable))]
    assert "SB_ORDERS" in names and "SB_FEED" not in names
    published = parse("publish", {"namespace": "/orders", "room": "room:a", "event": "e",
                                  "data": {}}, None, table)
    assert isinstance(published, Publish) and published.logged
    assert not isinstance(parse("publish", {"namespace": "/orders", "room": "room:a",
                                            "event": "e", "data": {}}), Publish)


def test_the_gateway_serves_declared_namespaces_built_in_events() -> None:
    served = build(None, parse_namespaces(EXAMPLE))
    assert set(served["/orders"].events) == events.CLIENT_EVENTS
    assert set(served["/feed"].events) == {events.ROOM_JOIN, events.ROOM_LEAVE,
                                           events.MESSAGE_SEND}
    assert served["/orders"].durable and not served["/feed"].durable
    assert served["/orders"].spec is not None and served["/orders"].spec.event_burst == 5
    assert served["/chat"].spec is not None and served["/chat"].spec.hooks


def test_the_documented_example_file_is_valid() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "namespaces.md").read_text()
    example = page.split("```toml\n", 1)[1].split("```", 1)[0]
    table = parse_namespaces(example)
    assert table["/orders"].durable and table["/orders"].auth == "hook"
    assert not table["/feed"].durable and table["/chat"].hooks
