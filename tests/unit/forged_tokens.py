"""JWTs pyjwt refuses to make: unsigned (``alg: none``) and hand-assembled ones."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _segment(value: dict[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode())


def claims(sub: str = "alice", ttl: float = 3600, **extra: Any) -> dict[str, Any]:
    return {"sub": sub, "exp": int(time.time() + ttl), **extra}


def unsigned_token(payload: dict[str, Any], alg: str = "none", signature: str = "") -> str:
    """``header.payload.`` with ``{"alg": "none"}`` (or any spelling of it) and no signature."""
    return f"{_segment({'alg': alg, 'typ': 'JWT'})}.{_segment(payload)}.{signature}"


def hs256_token(payload: dict[str, Any], key: bytes, header: dict[str, Any] | None = None) -> str:
    """An HS256 token assembled by hand, so the key may be anything (even a PEM)."""
    head = _segment(header or {"alg": "HS256", "typ": "JWT"})
    signing_input = f"{head}.{_segment(payload)}".encode()
    signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    return f"{signing_input.decode()}.{_b64url(signature)}"
