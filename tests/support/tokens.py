"""Real HS256 tokens for tests (pyjwt, the same library the gateway verifies with)."""

from __future__ import annotations

import time
from typing import Any

import jwt

SECRET = "test-secret-of-at-least-32-bytes-length!"


def make_token(sub: str, *, secret: str = SECRET, ttl: float = 3600, alg: str = "HS256",
               **claims: Any) -> str:
    payload: dict[str, Any] = {"sub": sub, "exp": int(time.time() + ttl), **claims}
    return jwt.encode(payload, secret, algorithm=alg)
