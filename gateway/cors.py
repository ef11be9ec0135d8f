"""CORS for the polling endpoint, from the same allow-list as the Origin check.

A page on another origin polls with XHR/fetch, so every polling answer and its preflight
carry CORS headers. With no allow-list any origin may connect (as the Origin check allows),
answered ``*`` and never with credentials; with one, a listed origin is echoed with
credentials and ``Vary: Origin`` (caches must not hand one origin's answer to another), and an
unlisted one gets no CORS header at all (its request is refused by the Origin check anyway).
"""

from __future__ import annotations

Headers = tuple[tuple[str, str], ...]

ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "Content-Type, Authorization"
MAX_AGE_S = "600"


def cors_headers(origin: str | None, allowed: frozenset[str]) -> Headers:
    """The CORS headers of an answer to a request from ``origin``."""
    if not allowed:
        return (("Access-Control-Allow-Origin", "*"),)
    if origin is None or origin not in allowed:
        return (("Vary", "Origin"),)
    return (("Access-Control-Allow-Origin", origin),
            ("Access-Control-Allow-Credentials", "true"),
            ("Vary", "Origin"))


def preflight_headers(origin: str | None, allowed: frozenset[str],
                      requested_headers: str | None) -> Headers:
    """The answer to an ``OPTIONS`` preflight: the CORS headers plus what may be sent."""
    base = cors_headers(origin, allowed)
    if allowed and (origin is None or origin not in allowed):
        return base
    return (*base,
            ("Access-Control-Allow-Methods", ALLOW_METHODS),
            ("Access-Control-Allow-Headers", requested_headers or ALLOW_HEADERS),
            ("Access-Control-Max-Age", MAX_AGE_S))
