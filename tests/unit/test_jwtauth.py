"""JWT verification: an algorithm allow-list without ``none``, 10 s leeway, ``exp`` and
``sub`` required, ``aud``/``iss`` when configured, and the ``rooms`` allow-list."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from shared.jwtauth import DEFAULT_ROOM_PATTERNS, Identity, TokenVerifier
from tests.support.tokens import SECRET
from tests.unit.forged_tokens import claims, hs256_token, unsigned_token

VERIFIER = TokenVerifier(("HS256",), secret=SECRET)


def token(payload: dict[str, Any], *, secret: str = SECRET, alg: str = "HS256") -> str:
    return jwt.encode(payload, secret, algorithm=alg)


def test_good_token_gives_an_identity() -> None:
    payload = claims("alice", name="Alice")

    identity = VERIFIER.verify(token(payload))

    assert identity == Identity("alice", "Alice", DEFAULT_ROOM_PATTERNS, float(payload["exp"]))


def test_expired_within_the_leeway_is_accepted() -> None:
    assert VERIFIER.verify(token(claims(ttl=-5))) is not None


def test_expired_beyond_the_leeway_is_refused() -> None:
    assert VERIFIER.verify(token(claims(ttl=-30))) is None


def test_default_leeway_is_ten_seconds() -> None:
    assert VERIFIER.leeway_s == 10


def test_not_yet_valid_is_refused() -> None:
    assert VERIFIER.verify(token(claims(nbf=int(time.time()) + 60))) is None


@pytest.mark.parametrize(
    "payload",
    [
        {"sub": "alice"},
        {"exp": 4_000_000_000},
        {"sub": "alice", "exp": "tomorrow"},
        {"sub": 42, "exp": 4_000_000_000},
        {"sub": ["alice"], "exp": 4_000_000_000},
        {"sub": None, "exp": 4_000_000_000},
        {"sub": "", "exp": 4_000_000_000},
        {"sub": "s" * 129, "exp": 4_000_000_000},
        {"sub": "alice", "exp": 4_000_000_000, "rooms": "room:*"},
        {"sub": "alice", "exp": 4_000_000_000, "rooms": ["room:*", 7]},
    ],
    ids=[
        "missing exp", "missing sub", "exp not a number", "sub int", "sub list", "sub null",
        "sub empty", "sub 129 chars", "rooms not a list", "rooms with a non-string",
    ],
)
def test_bad_claims_are_refused(payload: dict[str, Any]) -> None:
    assert VERIFIER.verify(token(payload)) is None


def test_sub_of_128_chars_is_accepted() -> None:
    identity = VERIFIER.verify(token(claims("s" * 128)))

    assert identity is not None and identity.sub == "s" * 128


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not.a.jwt",
        "garbage",
        "a.b",
        "x" * 9000,
        None,
        42,
        b"bytes",
    ],
    ids=["empty", "three junk parts", "one part", "two parts", "over 8 KiB", "None", "int",
         "bytes"],
)
def test_malformed_tokens_are_refused(bad: object) -> None:
    assert VERIFIER.verify(bad) is None


def test_wrong_secret_is_refused() -> None:
    assert VERIFIER.verify(token(claims(), secret="another-secret-of-at-least-32-bytes!!")) is None


def test_tampered_payload_is_refused() -> None:
    head, _, signature = token(claims("alice")).split(".")
    forged = unsigned_token(claims("mallory")).split(".")[1]

    assert VERIFIER.verify(f"{head}.{forged}.{signature}") is None


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_is_refused(alg: str) -> None:
    assert VERIFIER.verify(unsigned_token(claims(), alg=alg)) is None


def test_alg_none_is_refused_even_with_a_signature_part() -> None:
    assert VERIFIER.verify(unsigned_token(claims(), signature="c2lnbmF0dXJl")) is None


def test_algorithm_outside_the_allow_list_is_refused() -> None:
    assert VERIFIER.verify(token(claims(), secret="k" * 64, alg="HS512")) is None


def test_hmac_with_no_secret_configured_is_refused() -> None:
    """Algorithm confusion: an HS256 token must not verify against an empty or public key."""
    pem = (
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n"
        "-----END PUBLIC KEY-----\n"
    )
    verifier = TokenVerifier(("HS256", "ES256"), public_key=pem)

    assert verifier.verify(hs256_token(claims(), pem.encode())) is None
    assert verifier.verify(hs256_token(claims(), b"")) is None


def test_a_list_of_one_key_kind_takes_any_of_its_algorithms_and_no_other() -> None:
    verifier = TokenVerifier(("HS256", "HS512"), secret="k" * 64)

    assert verifier.verify(token(claims(), secret="k" * 64, alg="HS512")) is not None
    assert verifier.verify(token(claims(), secret="k" * 64, alg="HS384")) is None


def test_an_hmac_token_never_verifies_against_a_public_key_only_verifier() -> None:
    """Algorithm confusion, with no HMAC algorithm allowed at all."""
    pem = (
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n"
        "-----END PUBLIC KEY-----\n"
    )
    verifier = TokenVerifier(("ES256",), public_key=pem)

    assert verifier.verify(hs256_token(claims(), pem.encode())) is None


@pytest.mark.parametrize(
    "algorithms", [(), ("none",), ("HS256", "none"), ("HS256", "NONE"), ("None",)]
)
def test_verifier_refuses_algorithm_lists_with_none(algorithms: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        TokenVerifier(algorithms, secret=SECRET)


def test_audience_and_issuer_when_configured() -> None:
    verifier = TokenVerifier(("HS256",), secret=SECRET, audience="switchboard", issuer="auth")

    assert verifier.verify(token(claims(aud="switchboard", iss="auth"))) is not None
    assert verifier.verify(token(claims(aud=["other", "switchboard"], iss="auth"))) is not None
    assert verifier.verify(token(claims())) is None
    assert verifier.verify(token(claims(aud="switchboard"))) is None
    assert verifier.verify(token(claims(iss="auth"))) is None
    assert verifier.verify(token(claims(aud="other", iss="auth"))) is None
    assert verifier.verify(token(claims(aud="switchboard", iss="evil"))) is None


def test_audience_and_issuer_ignored_when_not_configured() -> None:
    assert VERIFIER.verify(token(claims(aud="anything", iss="anyone"))) is not None


def test_rooms_claim_is_a_glob_allow_list() -> None:
    identity = VERIFIER.verify(token(claims(rooms=["room:team-*", "room:lobby"])))

    assert identity is not None
    assert identity.room_patterns == ("room:team-*", "room:lobby")
    assert identity.may_join("room:team-a")
    assert identity.may_join("room:lobby")
    assert not identity.may_join("room:lobby2")
    assert not identity.may_join("room:general")
    assert not identity.may_join("ROOM:TEAM-A")


def test_without_a_rooms_claim_any_room_colon_name_may_be_joined() -> None:
    identity = VERIFIER.verify(token(claims()))

    assert identity is not None
    assert identity.may_join("room:general")
    assert not identity.may_join("general")
    assert not identity.may_join("user:bob")


def test_empty_rooms_claim_allows_no_room() -> None:
    identity = VERIFIER.verify(token(claims(rooms=[])))

    assert identity is not None and not identity.may_join("room:general")


def test_non_string_name_is_dropped() -> None:
    identity = VERIFIER.verify(token(claims(name=["Alice"])))

    assert identity is not None and identity.name is None


def test_the_token_an_identity_came_from_is_not_verified_again() -> None:
    raw = token(claims("alice"))
    known = VERIFIER.verify(raw)
    assert known is not None

    assert VERIFIER.verify(raw, known=known) is known


def test_another_token_beside_a_known_identity_is_verified() -> None:
    known = VERIFIER.verify(token(claims("alice")))

    forged = token(claims("alice"), secret="another-secret-of-enough-length-32b")
    assert VERIFIER.verify(forged, known=known) is None
    other = VERIFIER.verify(token(claims("bob")), known=known)
    assert other is not None and other.sub == "bob"


def test_a_known_identity_still_expires() -> None:
    payload = claims("alice", ttl=60)
    raw = token(payload)
    known = VERIFIER.verify(raw)
    assert known is not None

    assert VERIFIER.verify(raw, known=known, now=payload["exp"] + 9) is known
    assert VERIFIER.verify(raw, known=known, now=payload["exp"] + 10) is None


def test_the_token_is_kept_out_of_the_identity_repr() -> None:
    raw = token(claims("alice"))
    identity = VERIFIER.verify(raw)

    assert raw not in repr(identity)
