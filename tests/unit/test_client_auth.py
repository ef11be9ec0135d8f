"""Where the SDK's token comes from: a string as it is, a function or coroutine function
asked again on every call (so each reconnect can present a fresh token), anything but a
string refused."""

from __future__ import annotations

from typing import Any, cast

import pytest

from client.auth import TokenSource, resolve_token


async def test_a_string_is_the_token() -> None:
    assert await resolve_token("tok") == "tok"


async def test_a_function_is_asked_on_every_resolve() -> None:
    issued = iter(["first", "second"])
    source = lambda: next(issued)  # noqa: E731
    assert [await resolve_token(source), await resolve_token(source)] == ["first", "second"]


async def test_a_coroutine_function_is_awaited() -> None:
    calls: list[int] = []

    async def fresh() -> str:
        calls.append(1)
        return f"token-{len(calls)}"

    assert await resolve_token(fresh) == "token-1"
    assert await resolve_token(fresh) == "token-2"


@pytest.mark.parametrize("value", [None, 42, b"bytes", {"token": "t"}])
async def test_a_callable_returning_something_else_is_a_type_error(value: Any) -> None:
    async def wrong() -> Any:
        return value

    with pytest.raises(TypeError, match=f"returned {type(value).__name__}, not str"):
        await resolve_token(cast(TokenSource, wrong))
    with pytest.raises(TypeError, match="not str"):
        await resolve_token(cast(TokenSource, lambda: value))


async def test_an_error_in_the_callable_reaches_the_caller() -> None:
    def broken() -> str:
        raise RuntimeError("vault down")

    with pytest.raises(RuntimeError, match="vault down"):
        await resolve_token(broken)
