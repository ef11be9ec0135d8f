"""The wire contract's name checks and token encoding, and that the contract (everything in
``shared/protocol``) imports nothing outside itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.protocol.names import (
    decode_token,
    encode_id,
    encode_token,
    is_valid_room_name,
    is_valid_sub,
    user_room,
)

PROTOCOL = Path(__file__).parents[2] / "shared" / "protocol"


@pytest.mark.parametrize("name", ["a", "a.b", "*", ">", "a b", "=41", "\u00e9t\u00e9", "x" * 300])
def test_tokens_round_trip_and_stay_in_the_alphabet(name: str) -> None:
    token = encode_token(name)
    assert token == encode_id(name)
    assert all(c.isalnum() or c in "_-=" for c in token)
    assert decode_token(token) == name


@pytest.mark.parametrize("token", ["", "a.b", "=4", "=zz", "=41"])
def test_tokens_it_did_not_make_are_refused(token: str) -> None:
    with pytest.raises(ValueError):
        decode_token(token)


@given(st.text(min_size=1, alphabet=st.characters(exclude_categories=())))
def test_any_name_round_trips(name: str) -> None:
    assert decode_token(encode_id(name)) == name


@given(st.text(alphabet="Aa0_-=9FfCc3.\n%", max_size=12))
def test_a_token_is_decoded_only_when_it_is_the_canonical_encoding_of_its_name(token: str) -> None:
    try:
        name = decode_token(token)
    except ValueError:
        return
    assert encode_id(name) == token


@given(st.text(min_size=1, alphabet=st.characters(exclude_categories=())))
def test_the_encoding_is_the_contract_s_byte_by_byte(name: str) -> None:
    """Tokens are stored (KV keys, recovery offsets) and decoded by workers in other
    languages: every UTF-8 byte outside [A-Za-z0-9_-] as =HH, whatever path encodes it."""
    safe = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
    expected = "".join(chr(b) if b in safe else f"={b:02X}"
                       for b in name.encode("utf-8", "surrogatepass"))
    assert encode_id(name) == expected


def test_empty_names_have_no_token() -> None:
    with pytest.raises(ValueError):
        encode_id("")


def test_name_checks() -> None:
    assert is_valid_room_name("room:a@b_c-1") and not is_valid_room_name("a.b")
    assert not is_valid_room_name("x" * 129) and not is_valid_room_name(1)
    assert is_valid_sub("any thing.*") and not is_valid_sub("") and not is_valid_sub("x" * 129)
    assert user_room("alice") == "user:alice"


def test_the_wire_contract_imports_nothing_outside_itself() -> None:
    for path in PROTOCOL.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                top = node.module.split(".")[0]
                assert top not in {"gateway", "router", "presence", "client"}, path
                if top == "shared":
                    assert node.module.startswith("shared.protocol"), (path, node.module)
