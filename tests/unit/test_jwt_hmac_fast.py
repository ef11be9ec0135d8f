"""The HMAC shortcut changes no outcome: over generated tokens, ``TokenVerifier.verify``
gives what the PyJWT-only path gives (identity, claims, or the same exception)."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import pickle
import time
from typing import Any

import jwt
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.jwt_hmac_fast import fast_path_for
from shared.jwtauth import Identity, TokenVerifier
from tests.support.tokens import SECRET
from tests.unit.forged_tokens import claims

LONG_SECRET = "k" * 64
PEM = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n"
_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_MISSING = object()

TIMES: list[Any] = [_MISSING, None, "1", True, float("nan"), float("inf"), 10**400, 10**30]
TIMES += [("int", off) for off in (-3600, -40, -20, -5, 5, 20, 40, 3600)]
TIMES += [("float", off) for off in (-3600, -40, -5, 5, 40, 3600)]
TIMES += [("str", 3600)]
VARIANTS: dict[str, list[Any]] = {
    "alg": ["HS256", "HS384", "HS512", "none", "RS256", "ES256", _MISSING, 5, ["HS256"], ""],
    "typ": [_MISSING, "JWT", 5, None],
    "kid": [_MISSING, "k1", 7, None],
    "crit": [["b64"], [], ["exp"], "b64"],
    "b64": [False, True],
    "cty": ["JWT"],
    "sub": [_MISSING, None, "", "s" * 129, 42, ["alice"], "bob"],
    "exp": TIMES, "nbf": TIMES, "iat": TIMES,
    "aud": ["switchboard", ["other", "switchboard"], ["other"], [], "", [1, "switchboard"], 5,
            "other", None],
    "iss": ["auth", "evil", 5, None, ["auth"]],
    "jti": ["j", 5, None],
    "rooms": [["room:a"], "room:*", [1]],
    "name": ["Alice", 3],
    "duplicate": ['"sub":42', '"exp":"x"', '"sub":"mallory"', '"aud":"switchboard"'],
    "sign": ["wrong key", "HS256", "HS384", "HS512", "empty"],
    "mutate": ["bad char", "=", "==", "===", "dot", "truncate", "flip", "non-ascii", "space",
               "padding bits", "not json header", "array payload", "utf16 payload"],
}
COMMON_HEADER = {"alg": "HS256", "typ": "JWT"}
ANY_VERIFIER = st.builds(
    TokenVerifier,
    st.sampled_from([("HS256",), ("HS256", "HS512"), ("HS384", "HS256"), ("HS256", "ES256"),
                     ("ES256",), ("HS512",)]),
    secret=st.sampled_from([SECRET, LONG_SECRET, "short", PEM, '{"kty": "oct"}', ""]),
    public_key=st.sampled_from(["", PEM]),
    audience=st.sampled_from(["", "switchboard"]),
    issuer=st.sampled_from(["", "auth"]),
    leeway_s=st.sampled_from([10.0, 0.0, 2.5, 30.0]),
)
VERIFIERS = st.one_of(
    st.builds(TokenVerifier, st.just(("HS256",)), secret=st.just(SECRET),
              audience=st.sampled_from(["", "switchboard"]), issuer=st.sampled_from(["", "auth"])),
    ANY_VERIFIER,
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _time(value: Any) -> Any:
    if not isinstance(value, tuple):
        return value
    kind, offset = value
    moment = time.time() + offset
    return {"int": int(moment), "float": moment + 0.25, "str": str(int(moment))}[kind]


def _fields(changes: dict[str, Any], names: tuple[str, ...], common: dict[str, Any]) -> dict[
        str, Any]:
    fields = dict(common)
    for name in names:
        if name in changes:
            fields.pop(name, None)
            if changes[name] is not _MISSING:
                fields[name] = _time(changes[name])
    return fields


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _mutate(token: str, how: str) -> str:
    head, body, signature = token.split(".")
    last = signature[-1:] or "A"
    if how == "flip":
        return f"{head}.{body}.{signature[:-1]}{'B' if last == 'A' else 'A'}"
    if how == "padding bits":  # same bytes, but not the canonical spelling
        return f"{head}.{body}.{signature[:-1]}{_ALPHABET[_ALPHABET.index(last) ^ 1]}"
    edits = {
        "bad char": f"{head}.{body[:5]}!{body[5:]}.{signature}",
        "=": f"{token}=", "==": f"{head}.{body}==.{signature}", "===": f"{token}===",
        "dot": f"{head}.{body}..{signature}", "truncate": token[:-1],
        "non-ascii": f"{head}.{body}é.{signature}", "space": f"{head} .{body}.{signature}",
    }
    return edits.get(how, token)


def _token(changes: dict[str, Any], secret: str) -> str:
    header = _fields(changes, ("alg", "typ", "kid", "crit", "b64", "cty"), COMMON_HEADER)
    payload = _fields(changes, ("sub", "exp", "nbf", "iat", "aud", "iss", "jti", "rooms", "name"),
                      {**claims("alice"), "aud": "switchboard", "iss": "auth"})
    head_json = json.dumps(header).encode()
    body_json = json.dumps(payload, separators=(",", ":"))
    if "duplicate" in changes:
        body_json = f"{body_json[:-1]},{changes['duplicate']}}}"
    body_raw = body_json.encode()
    how = changes.get("mutate", "")
    if how == "not json header":
        head_json = b"[1]"
    elif how == "array payload":
        body_raw = b"[" + body_raw + b"]"
    elif how == "utf16 payload":
        body_raw = body_json.encode("utf-16-le")
    signing_input = f"{_b64(head_json)}.{_b64(body_raw)}".encode()
    sign = changes.get("sign", header.get("alg"))
    key = b"another key, long enough for every HMAC algorithm here....." * 2
    key = key if sign == "wrong key" else secret.encode()
    digest = _HASHES.get(sign if isinstance(sign, str) else "", hashlib.sha256)
    signature = b"" if sign == "empty" else hmac.new(key, signing_input, digest).digest()
    return _mutate(f"{signing_input.decode()}.{_b64(signature)}", how)


def _outcome(verifier: TokenVerifier, token: str, now: float | None) -> tuple[str, Any]:
    try:
        identity = verifier.verify(token, now=now)
    except Exception as error:  # the same exception must come out of both paths
        return ("raises", type(error))
    return ("identity", None if identity is None else (identity, identity.token))


def _pyjwt_only(verifier: TokenVerifier) -> TokenVerifier:
    reference = TokenVerifier(verifier.algorithms, verifier.secret, verifier.public_key,
                              verifier.audience, verifier.issuer, verifier.leeway_s)
    object.__setattr__(reference, "_fast", None)
    return reference


def _assert_same(verifier: TokenVerifier, token: str, now: float | None) -> None:
    assert _outcome(verifier, token, now) == _outcome(_pyjwt_only(verifier), token, now)
    fast = verifier._fast
    accepted = fast.accept(token) if fast is not None else None
    if accepted is not None:
        decoded = jwt.decode(token, verifier.secret, algorithms=list(verifier.algorithms),
                             audience=verifier.audience or None,
                             issuer=verifier.issuer or None, leeway=verifier.leeway_s,
                             options={"require": ["exp", "sub"],
                                      "verify_aud": bool(verifier.audience)})
        assert repr(accepted) == repr(decoded)


NOW = st.one_of(st.none(), st.floats(-1e10, 1e10))


@st.composite
def near_common(draw: st.DrawFn) -> dict[str, Any]:
    """The common token with up to three of its fields changed."""
    names = draw(st.sets(st.sampled_from(sorted(VARIANTS)), max_size=3))
    return {name: draw(st.sampled_from(VARIANTS[name])) for name in sorted(names)}


@settings(max_examples=600, deadline=None)
@given(verifier=VERIFIERS, changes=near_common(), now=NOW)
def test_verify_is_pyjwts_answer_for_tokens_near_the_common_one(
        verifier: TokenVerifier, changes: dict[str, Any], now: float | None) -> None:
    _assert_same(verifier, _token(changes, verifier.secret), now)


@settings(max_examples=300, deadline=None)
@given(verifier=VERIFIERS, now=NOW,
       changes=st.fixed_dictionaries({}, optional={
           name: st.sampled_from(values) for name, values in VARIANTS.items()}))
def test_verify_is_pyjwts_answer_for_any_mix_of_changes(
        verifier: TokenVerifier, changes: dict[str, Any], now: float | None) -> None:
    _assert_same(verifier, _token(changes, verifier.secret), now)


@settings(max_examples=200, deadline=None)
@given(verifier=VERIFIERS, text=st.text(alphabet="AZaz09-_.=!é ", max_size=60))
def test_verify_is_pyjwts_answer_for_junk(verifier: TokenVerifier, text: str) -> None:
    _assert_same(verifier, text or ".", None)


def test_the_common_token_is_accepted_by_the_shortcut() -> None:
    verifier = TokenVerifier(("HS256",), secret=SECRET, audience="switchboard", issuer="auth")
    token = _token({"kid": "k1"}, SECRET)

    assert verifier._fast is not None
    accepted = verifier._fast.accept(token)

    assert accepted is not None and accepted["sub"] == "alice"
    assert verifier.verify(token) == Identity("alice", None, ("room:*",), accepted["exp"])


def test_hs512_with_a_long_enough_secret_takes_the_shortcut() -> None:
    fast = fast_path_for(("HS256", "HS512"), LONG_SECRET, "", "", 10.0)

    assert fast is not None
    assert fast.accept(jwt.encode(claims(), LONG_SECRET, algorithm="HS512")) is not None


def test_a_token_the_shortcut_doubts_is_left_to_pyjwt() -> None:
    fast = fast_path_for(("HS256",), SECRET, "", "", 10.0)
    token = _token({"crit": ["b64"], "b64": True}, SECRET)

    assert fast is not None and fast.accept(token) is None
    assert fast.accept(jwt.encode(claims(exp=str(int(time.time()) + 60)), SECRET)) is None


def test_keys_pyjwt_refuses_or_warns_about_never_take_the_shortcut() -> None:
    assert fast_path_for(("HS256",), PEM, "", "", 10.0) is None
    assert fast_path_for(("HS256",), '{"kty": "oct", "k": "x"}', "", "", 10.0) is None
    assert fast_path_for(("HS256",), "short", "", "", 10.0) is None
    assert fast_path_for(("HS512",), SECRET, "", "", 10.0) is None
    assert fast_path_for(("ES256",), SECRET, "", "", 10.0) is None
    assert fast_path_for(("HS256",), "", "", "", 10.0) is None


def test_a_verifier_with_the_shortcut_still_copies_and_pickles() -> None:
    verifier = TokenVerifier(("HS256",), secret=SECRET, audience="switchboard")
    token = _token({}, SECRET)

    for twin in (copy.deepcopy(verifier), pickle.loads(pickle.dumps(verifier))):
        assert twin == verifier and twin._fast is not None
        assert twin._fast.accept(token) is not None
        assert twin.verify(token) == verifier.verify(token) is not None
