"""What the SDK raises: one base class; a failed request (with its code and the server's
``retry_after_ms``), an ack timeout (with the attempts), a refused namespace (with the
server's data), a lost transport and a closed client, each saying what happened."""

from __future__ import annotations

import pytest

from client import errors
from client.errors import AckTimeout, ConnectRefused, RequestFailed, SwitchboardError


@pytest.mark.parametrize("error", [
    RequestFailed("message:send", "rate_limited", "slow down", 250),
    AckTimeout("room:join", 3),
    ConnectRefused("/chat", "invalid token"),
    errors.TransportLost("ping timeout"),
    errors.ClientClosed("closed"),
])
def test_every_error_is_a_switchboard_error(error: SwitchboardError) -> None:
    assert isinstance(error, SwitchboardError)
    with pytest.raises(SwitchboardError):
        raise error


def test_request_failed_carries_the_error_body() -> None:
    error = RequestFailed("message:send", "rate_limited", "slow down", 250)
    assert (error.event, error.code, error.message, error.retry_after_ms) == (
        "message:send", "rate_limited", "slow down", 250)
    assert str(error) == "message:send: rate_limited: slow down"
    assert RequestFailed("room:join", "forbidden", "no").retry_after_ms is None


def test_ack_timeout_counts_the_attempts() -> None:
    error = AckTimeout("room:join", 3)
    assert (error.event, error.attempts) == ("room:join", 3)
    assert str(error) == "room:join: no ack after 3 attempt(s)"


def test_connect_refused_names_the_namespace_and_keeps_the_data() -> None:
    error = ConnectRefused("/chat", "invalid token", {"code": "unauthorized"})
    assert (error.namespace, error.message, error.data) == (
        "/chat", "invalid token", {"code": "unauthorized"})
    assert str(error) == "/chat: invalid token"
    assert ConnectRefused("/", "nope").data is None


def test_a_request_failure_is_not_the_end_of_the_session() -> None:
    assert not isinstance(RequestFailed("e", "c", "m"), errors.ClientClosed | errors.TransportLost)
    assert not isinstance(errors.ClientClosed(), errors.TransportLost)
