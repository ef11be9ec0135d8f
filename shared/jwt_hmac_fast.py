"""An accept-only shortcut for the common HMAC token, in front of PyJWT's ``jwt.decode``.

PyJWT spends most of a handshake's verify on generic work (a per-character base64 check,
preparing the key, option merging). :class:`HmacFastPath` does the same checks for the
one shape real issuers send: three unpadded base64url segments, a header of only ``alg``
(HS256/HS384/HS512), ``typ`` and a string ``kid``, and integer or finite float time claims.
It either returns the claims PyJWT would return, called as ``TokenVerifier.verify`` calls it,
or ``None`` for "no opinion"; it never refuses. Anything else (padding, ``crit``, ``b64``,
other header fields, string or bool times, an unusual ``aud``, a bad signature) goes on to
PyJWT, which gives the answer and its reason. A short key is left to PyJWT too, so its
``InsecureKeyLengthWarning`` is still given.
"""

from __future__ import annotations

import binascii
import hmac
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

from jwt.algorithms import HMACAlgorithm
from jwt.exceptions import InvalidKeyError

_HASHES = {"HS256": HMACAlgorithm.SHA256, "HS384": HMACAlgorithm.SHA384,
           "HS512": HMACAlgorithm.SHA512}
_SEGMENT = r"[A-Za-z0-9_-]+"
_COMPACT = re.compile(rf"({_SEGMENT})\.({_SEGMENT})\.({_SEGMENT})")
_HEADER_FIELDS = frozenset({"alg", "typ", "kid"})


@dataclass(frozen=True, slots=True)
class HmacFastPath:
    """``algorithms``: the allowed HMAC algorithms whose key PyJWT takes without a warning,
    each with an HMAC keyed once (each check copies it); ``audience``/``issuer``: ``None``
    when not checked."""

    key: bytes = field(repr=False)
    algorithms: tuple[str, ...]
    audience: str | None
    issuer: str | None
    leeway_s: float
    _macs: dict[str, hmac.HMAC] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        macs = {alg: hmac.new(self.key, digestmod=_HASHES[alg]) for alg in self.algorithms}
        object.__setattr__(self, "_macs", macs)

    def __reduce__(self) -> tuple[type[HmacFastPath], tuple[Any, ...]]:
        """Copied and pickled as its parts (a keyed HMAC is neither), so the verifier
        holding it still is."""
        return (HmacFastPath, (self.key, self.algorithms, self.audience, self.issuer,
                               self.leeway_s))

    def accept(self, token: str) -> dict[str, Any] | None:
        """The claims when PyJWT would accept ``token`` with exactly these claims, else
        ``None`` (which says nothing about the token)."""
        match = _COMPACT.fullmatch(token)
        if match is None:
            return None
        head, body, signature = match.groups()
        try:
            header = _json(_decode(head))
            if not isinstance(header, dict) or not header.keys() <= _HEADER_FIELDS:
                return None
            alg = header.get("alg")
            keyed = self._macs.get(alg) if type(alg) is str else None
            if keyed is None or not isinstance(header.get("kid", ""), str):
                return None
            mac = keyed.copy()
            mac.update(f"{head}.{body}".encode("ascii"))
            expected = mac.digest()
            if not hmac.compare_digest(_decode(signature), expected):
                return None
            claims = _json(_decode(body))
        except (ValueError, TypeError, RecursionError):
            return None
        if not isinstance(claims, dict) or not self._claims_hold(claims):
            return None
        return claims

    def _claims_hold(self, claims: dict[str, Any]) -> bool:
        """PyJWT's claim rules with ``require=["exp", "sub"]``, every ``verify_*`` on
        (``verify_aud`` only with an audience) and ``strict_aud`` off."""
        if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("jti", ""), str):
            return False
        now = time.time()
        exp = _seconds(claims.get("exp"))
        if exp is None or exp <= now - self.leeway_s:
            return False
        for name in ("iat", "nbf"):
            if name in claims:
                moment = _seconds(claims[name])
                if moment is None or moment > now + self.leeway_s:
                    return False
        iss = claims.get("iss")
        if self.issuer is not None and (type(iss) is not str or iss != self.issuer):
            return False
        return self.audience is None or _audience_holds(claims.get("aud"), self.audience)


def fast_path_for(algorithms: tuple[str, ...], secret: str, audience: str, issuer: str,
                  leeway_s: float) -> HmacFastPath | None:
    """The shortcut for a verifier, or ``None`` when no algorithm can take it: no HMAC
    algorithm allowed, no secret, a secret PyJWT refuses as an HMAC key, or a leeway that
    is not plain seconds."""
    allowed = [alg for alg in algorithms if alg in _HASHES]
    if not allowed or not secret or type(leeway_s) not in (int, float):
        return None
    try:
        key = HMACAlgorithm(_HASHES[allowed[0]]).prepare_key(secret)
    except (InvalidKeyError, ValueError, TypeError):
        return None
    quiet = tuple(alg for alg in allowed
                  if HMACAlgorithm(_HASHES[alg]).check_key_length(key) is None)
    if not quiet:
        return None
    return HmacFastPath(key, quiet, audience or None, issuer or None, leeway_s)


def _decode(segment: str) -> bytes:
    """Only canonical unpadded base64url, as PyJWT requires (it re-encodes and compares);
    the caller has checked the alphabet, which ``a2b_base64`` would not."""
    if len(segment) % 4 == 1:
        raise ValueError("not base64url")
    standard = segment.encode("ascii").translate(_TO_STANDARD)
    raw = binascii.a2b_base64(standard + b"=" * (-len(segment) % 4))
    if binascii.b2a_base64(raw, newline=False).rstrip(b"=") != standard:
        raise ValueError("not canonical base64url")
    return raw


_TO_STANDARD = bytes.maketrans(b"-_", b"+/")


def _json(raw: bytes) -> Any:
    """``json.loads(raw)`` for the bytes ``json.detect_encoding`` calls UTF-8 (an object
    whose second byte is not NUL), decoded as ``json.loads`` decodes them."""
    if raw[:1] != b"{" or raw[1:2] == b"\x00":
        raise ValueError("not a UTF-8 JSON object")
    return json.loads(raw.decode("utf-8", "surrogatepass"))


def _seconds(value: object) -> int | None:
    """``int(value)`` as PyJWT takes a time claim, for the types taken here: an int or a
    finite float (never a bool or a numeric string, which PyJWT judges itself)."""
    if type(value) is int:
        return value
    if type(value) is float and math.isfinite(value):
        return int(value)
    return None


def _audience_holds(aud: object, audience: str) -> bool:
    if type(aud) is str:
        return aud == audience
    return (type(aud) is list and bool(aud) and all(type(item) is str for item in aud)
            and audience in aud)
