"""The namespace table is the one list of namespaces: the built-in four keep the contract's
properties, everything else is derived from it, and declared namespaces can be merged in."""

from __future__ import annotations

import pytest

from gateway.namespaces import NAMESPACES as GATEWAY_NAMESPACES
from shared.namespaces import (
    BUILT_IN,
    INBOX_NAMESPACE,
    NamespaceSpec,
    NamespaceTable,
    builtin_events,
)
from shared.protocol import events


def test_the_built_in_namespaces_of_the_contract() -> None:
    assert list(BUILT_IN) == ["/", "/chat", "/notifications", "/live-updates"]
    assert {"/chat", "/notifications"} == BUILT_IN.durable
    assert {"/chat"} == BUILT_IN.presence
    assert INBOX_NAMESPACE == "/notifications"


def test_defaults_are_those_of_the_design_table() -> None:
    spec = NamespaceSpec("/orders")
    assert (spec.durable, spec.presence, spec.auth, spec.hooks) == (False, False, "jwt", False)
    assert (spec.hook_timeout_ms, spec.hook_concurrency, spec.hook_headers) == (2000, 1, ())
    assert (spec.event_rate, spec.event_burst) == (100.0, 100)


@pytest.mark.parametrize(("name", "token"), [
    ("/", "root"), ("/chat", "chat"), ("/live-updates", "live-updates"),
    ("/a.b", "a=2Eb"),
])
def test_a_namespace_token_is_its_encoded_name(name: str, token: str) -> None:
    assert NamespaceSpec(name).token == token


def test_events_derived_for_a_declared_namespace() -> None:
    base = {events.ROOM_JOIN, events.ROOM_LEAVE, events.MESSAGE_SEND}
    assert builtin_events(NamespaceSpec("/x")) == base
    assert builtin_events(NamespaceSpec("/x", durable=True)) == base | {events.ROOM_HISTORY}
    assert builtin_events(NamespaceSpec("/x", presence=True)) == base | {
        events.ROOM_PRESENCE, events.TYPING_START, events.TYPING_STOP}


def test_the_gateway_serves_what_the_table_says() -> None:
    assert set(GATEWAY_NAMESPACES) == set(BUILT_IN)
    assert set(GATEWAY_NAMESPACES["/chat"].events) == events.CLIENT_EVENTS
    assert set(GATEWAY_NAMESPACES["/live-updates"].events) == {events.ROOM_JOIN,
                                                               events.ROOM_LEAVE}
    assert not GATEWAY_NAMESPACES["/"].events and not GATEWAY_NAMESPACES["/notifications"].events
    assert {n for n, ns in GATEWAY_NAMESPACES.items() if ns.durable} == BUILT_IN.durable


def test_lookup_by_name_and_token() -> None:
    assert BUILT_IN.token("/chat") == "chat"
    assert BUILT_IN.by_token("root") == BUILT_IN["/"]
    assert BUILT_IN.by_token("nope") is None
    with pytest.raises(ValueError, match="unknown namespace"):
        BUILT_IN.token("/nope")


def test_merged_adds_and_replaces() -> None:
    table = BUILT_IN.merged([NamespaceSpec("/orders", durable=True),
                             NamespaceSpec("/chat", durable=True, presence=True, hooks=True)])
    assert table.durable == BUILT_IN.durable | {"/orders"}
    assert table["/chat"].hooks and not BUILT_IN["/chat"].hooks
    assert len(table) == 5


def test_two_names_with_one_token_are_refused() -> None:
    with pytest.raises(ValueError, match="token"):
        NamespaceTable([NamespaceSpec("/root"), NamespaceSpec("/")])
