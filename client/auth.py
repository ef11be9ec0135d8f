"""Where the token comes from: a string, or a (coroutine) function asked on every
(re)connect, so a long-lived client can present a fresh token after the old one expired
instead of being refused for good."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

TokenSource = str | Callable[[], str | Awaitable[str]]


async def resolve_token(source: TokenSource) -> str:
    if isinstance(source, str):
        return source
    value = source()
    if inspect.isawaitable(value):
        value = await value
    if not isinstance(value, str):
        raise TypeError(f"the token callable returned {type(value).__name__}, not str")
    return value
