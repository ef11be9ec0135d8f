"""Subjects and keys come from validated names or the reversible token encoding, so no name
can add a subject token, a wildcard or whitespace."""

from __future__ import annotations

import random
import re

import pytest

from shared.namespaces import BUILT_IN
from shared.subjects import (
    Subjects,
    decode_token,
    direct_get,
    encode_token,
    gateway_key,
    is_valid_room_name,
    is_valid_sub,
    kv_stream,
    kv_subject_prefix,
    presence_boot_key,
    presence_instance_key,
    presence_record_key,
    presence_replica_key,
    presence_typing_key,
    registry_key,
    session_key,
    user_of_registry_key,
)

TOKEN_ALPHABET = re.compile(r"[A-Za-z0-9_=-]+")

HOSTILE_NAMES = [
    "a",
    "room:general",
    "a.b",
    "a..b",
    ".",
    "*",
    ">",
    "x.>",
    "x.*.y",
    "a b",
    " ",
    "\t\n\r",
    "=",
    "==41",
    "=41",
    "%2E",
    "\u00e9t\u00e9",
    "\U0001f600 party",
    "\u202eevil",
    "\x00nul",
    "\ud800lone surrogate",
    "sub$with/odd\\chars",
    "x" * 500,
]


def random_names(count: int) -> list[str]:
    rng = random.Random(7)
    pools = [
        "abcXYZ019_-",
        ".*> \t=:@/\\$#%",
        "\u00e9\u00df\u4e2d\U0001f600\u202e\u200b\x00\x7f",
    ]
    names = []
    for _ in range(count):
        pool = "".join(rng.sample(pools, rng.randrange(1, 4)))
        names.append("".join(rng.choice(pool) for _ in range(rng.randrange(1, 20))))
    return names


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_encode_decode_round_trip(name: str) -> None:
    token = encode_token(name)

    assert TOKEN_ALPHABET.fullmatch(token)
    assert decode_token(token) == name


def test_random_names_round_trip_into_the_token_alphabet() -> None:
    for name in random_names(2000):
        token = encode_token(name)
        assert TOKEN_ALPHABET.fullmatch(token), (name, token)
        assert decode_token(token) == name


def test_safe_characters_are_kept_as_is() -> None:
    assert encode_token("Room_1-a") == "Room_1-a"
    assert encode_token("a.b") == "a=2Eb"


def test_empty_name_has_no_token() -> None:
    with pytest.raises(ValueError):
        encode_token("")


@pytest.mark.parametrize(
    "token",
    ["", "a.b", "a b", "*", ">", "=", "=4", "=4g", "=4a", "==", "a=", "=FF", "=C3", "\u00e9"],
)
def test_decode_rejects_what_encode_never_makes(token: str) -> None:
    with pytest.raises(ValueError):
        decode_token(token)


@pytest.mark.parametrize("token", ["=41", "room=3Ageneral=5F", "=2D"])
def test_decode_rejects_escaped_safe_bytes(token: str) -> None:
    with pytest.raises(ValueError):
        decode_token(token)


@pytest.mark.parametrize(
    "name", ["room:general", "a@b-c_d:1", "x", "A" * 128, "user:alice", "::@@--__"]
)
def test_valid_room_names(name: str) -> None:
    assert is_valid_room_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "x.>", "*", ">", "a b", "a.b", "A" * 129, "", "room:\u00e9", "room\n", "room:a\n",
        "room\t", "a/b", "a=b", "room:\U0001f600", None, 7, b"room", ["room"],
    ],
)
def test_invalid_room_names(name: object) -> None:
    assert not is_valid_room_name(name)


def test_sub_validity() -> None:
    assert is_valid_sub("alice")
    assert is_valid_sub("s" * 128)
    assert not is_valid_sub("s" * 129)
    assert not is_valid_sub("")
    assert not is_valid_sub(42)


@pytest.mark.parametrize("namespace", sorted(BUILT_IN))
def test_fanout_subject_has_four_safe_tokens_for_any_room(namespace: str) -> None:
    subjects = Subjects()
    for room in [*HOSTILE_NAMES, *random_names(200)]:
        subject = subjects.fanout(namespace, room)
        tokens = subject.split(".")
        assert len(tokens) == 4, subject
        assert tokens[:3] == ["sb", "fan", BUILT_IN.token(namespace)]
        assert all(TOKEN_ALPHABET.fullmatch(token) for token in tokens), subject
        assert "*" not in tokens and ">" not in tokens
        assert subjects.room_from_fanout(subject) == (namespace, room)


def test_fanout_of_an_unknown_namespace_or_empty_room_is_refused() -> None:
    with pytest.raises(ValueError):
        Subjects().fanout("/nope", "room:a")
    with pytest.raises(ValueError):
        Subjects().fanout("/chat", "")


def test_fanout_wildcard_covers_one_namespace() -> None:
    assert Subjects("app").fanout_wildcard("/chat") == "app.fan.chat.*"
    assert Subjects("app").fanout("/live-updates", "room:a") == "app.fan.live-updates.room=3Aa"


@pytest.mark.parametrize(
    "subject",
    [
        "other.fan.chat.room",
        "sb.gw.chat.room",
        "sb.fan.nope.room",
        "sb.fan.chat",
        "sb.fan.chat.a.b",
        "sb.fan.chat.*",
        "sb.fan.chat.>",
        "sb.fan.chat.",
        "sb.fan.chat.=ZZ",
    ],
)
def test_room_from_fanout_refuses_other_subjects(subject: str) -> None:
    assert Subjects().room_from_fanout(subject) is None


def test_control_inbox_and_api_subjects_encode_their_names() -> None:
    subjects = Subjects()

    assert subjects.gateway_kick("gw.1 *") == "sb.gw.gw=2E1=20=2A.kick"
    assert subjects.inbox("a b.>") == "sb.inbox.a=20b=2E=3E"
    assert subjects.api("send") == "sb.api.send"


def test_stream_and_bucket_names_come_from_the_prefix_and_the_table() -> None:
    subjects = Subjects("my-app")
    assert subjects.log_stream("/chat") == "MY_APP_CHAT"
    assert subjects.log_stream("/notifications") == "MY_APP_NOTIFICATIONS"
    assert subjects.inbox_stream() == "MY_APP_INBOX"
    assert subjects.presence_stream() == "MY_APP_PRESENCE"
    assert (subjects.session_bucket(), subjects.registry_bucket(), subjects.gateways_bucket(),
            subjects.presence_bucket()) == (
        "my-app-sessions", "my-app-registry", "my-app-gateways", "my-app-presence")
    assert kv_subject_prefix("b") == "$KV.b." and kv_stream("b") == "KV_b"
    assert direct_get("S") == "$JS.API.DIRECT.GET.S"
    assert direct_get("S", "a.b") == "$JS.API.DIRECT.GET.S.a.b"


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_kv_keys_keep_every_name_in_one_token(name: str) -> None:
    assert session_key("/chat", name).split(".") == ["chat", encode_token(name)]
    assert registry_key(name).split(".") == ["u", encode_token(name)]
    assert user_of_registry_key(registry_key(name)) == name
    assert gateway_key(name) == encode_token(name)
    assert presence_record_key(name, "b", "c").split(".") == ["c", encode_token(name), "b", "c"]
    assert presence_record_key(name, "b", "c").startswith(presence_instance_key(name, "b") + ".")
    assert presence_typing_key(name, name).split(".")[1:] == [encode_token(name)] * 2
    assert presence_boot_key(name) == "g." + encode_token(name)
    assert presence_replica_key(name) == "r." + encode_token(name)
