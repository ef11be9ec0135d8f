"""JWT verification for handshakes: an algorithm allow-list that can never contain ``none``.

The verifier returns an :class:`Identity` or ``None``; it never says *why* a token failed to
the client (that is ``unauthorized`` either way) and never logs the token itself.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field
from typing import Any

import jwt

from shared.jwt_hmac_fast import HmacFastPath, fast_path_for
from shared.subjects import SUB_MAX

DEFAULT_ROOM_PATTERNS = ("room:*",)
_HMAC = ("HS256", "HS384", "HS512")


@dataclass(frozen=True, slots=True)
class Identity:
    """``token`` is the exact token this identity was verified from (never shown or
    compared), so a connection that presents it again is not verified twice."""

    sub: str
    name: str | None
    room_patterns: tuple[str, ...]
    expires_at: float
    token: str = field(default="", repr=False, compare=False)

    def may_join(self, room: str) -> bool:
        """The JWT ``rooms`` claim is an allow-list of glob patterns (absent: any ``room:*``)."""
        return any(fnmatch.fnmatchcase(room, pattern) for pattern in self.room_patterns)


@dataclass(frozen=True, slots=True)
class TokenVerifier:
    algorithms: tuple[str, ...]
    secret: str = ""
    public_key: str = ""
    audience: str = ""
    issuer: str = ""
    leeway_s: float = 10.0
    _fast: HmacFastPath | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.algorithms or any(a.lower() == "none" for a in self.algorithms):
            raise ValueError("JWT algorithms must be a non-empty list without 'none'")
        fast = fast_path_for(self.algorithms, self.secret, self.audience, self.issuer,
                             self.leeway_s)
        object.__setattr__(self, "_fast", fast)

    def verify(self, token: object, known: Identity | None = None,
               now: float | None = None) -> Identity | None:
        """``known``: an identity this connection already verified. When ``token`` is the
        very token it came from, the signature and claims stand as checked; only ``exp`` can
        have passed since (``nbf`` and ``iat`` only become truer), so only it is checked."""
        if not isinstance(token, str) or not token or len(token) > 8192:
            return None
        if known is not None and known.token and token == known.token:
            moment = time.time() if now is None else now
            return known if moment < known.expires_at + self.leeway_s else None
        accepted = self._fast.accept(token) if self._fast is not None else None
        if accepted is not None:  # the common HMAC token; any other goes to PyJWT
            return _identity(accepted, token)
        try:
            algorithms = list(self.algorithms)
            if all(a in _HMAC for a in algorithms) or not any(a in _HMAC for a in algorithms):
                key = self.secret if algorithms[0] in _HMAC else self.public_key
            else:  # both kinds allowed: the token's own alg picks the key (one more parse)
                alg = jwt.get_unverified_header(token).get("alg")
                if alg not in self.algorithms:
                    return None
                key = self.secret if alg in _HMAC else self.public_key
                algorithms = [alg]
            if not key:
                return None
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.audience or None,
                issuer=self.issuer or None,
                leeway=self.leeway_s,
                options={"require": ["exp", "sub"], "verify_aud": bool(self.audience)},
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            return None
        return _identity(claims, token)


def _identity(claims: dict[str, Any], token: str) -> Identity | None:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not 0 < len(sub) <= SUB_MAX:
        return None
    name = claims.get("name")
    rooms = claims.get("rooms")
    if rooms is None:
        patterns = DEFAULT_ROOM_PATTERNS
    elif isinstance(rooms, list) and all(isinstance(r, str) for r in rooms):
        patterns = tuple(rooms)
    else:
        return None
    return Identity(
        sub=sub,
        name=name if isinstance(name, str) else None,
        room_patterns=patterns,
        expires_at=float(claims["exp"]),
        token=token,
    )
