"""Connection-state recovery rules on the client: the CONNECT auth, stripping the offset from
events, deciding whether the session came back, and the joins that replace a lost session."""

from __future__ import annotations

from typing import Any

import pytest

from client.recovery import (
    RecoveryState,
    after_connect,
    connect_auth,
    rejoin_payloads,
    split_offset,
    was_recovered,
)


def test_first_connect_sends_only_the_token() -> None:
    assert connect_auth("t", RecoveryState(), enabled=True) == {"token": "t"}


def test_reconnect_sends_pid_and_offset() -> None:
    state = RecoveryState("p1", "1234")

    assert connect_auth("t", state, enabled=True) == {"token": "t", "pid": "p1",
                                                      "offset": "1234"}


def test_reconnect_before_any_event_sends_the_pid_without_offset() -> None:
    assert connect_auth("t", RecoveryState("p1"), enabled=True) == {"token": "t", "pid": "p1"}


def test_recovery_off_tells_the_gateway() -> None:
    assert connect_auth("t", RecoveryState("p1", "9"), enabled=False) == {
        "token": "t", "recovery": False}


@pytest.mark.parametrize(("args", "pid_known", "has_ack", "expected"), [
    ([{"room": "r"}, "1234"], True, False, ([{"room": "r"}], "1234")),
    (["1234"], True, False, ([], "1234")),  # an event with no payload still has an offset
    ([{"room": "r"}, "1234|cm9vbQ:7"], True, False, ([{"room": "r"}], "1234|cm9vbQ:7")),
    ([{"room": "r"}], True, False, ([{"room": "r"}], None)),
    ([{"room": "r"}, "1234"], False, False, ([{"room": "r"}, "1234"], None)),  # no pid
    ([{"room": "r"}, "1234"], True, True, ([{"room": "r"}, "1234"], None)),  # asks an ack
    ([], True, False, ([], None)),
])
def test_split_offset(args: list[Any], pid_known: bool, has_ack: bool,
                      expected: tuple[list[Any], str | None]) -> None:
    assert split_offset(args, pid_known, has_ack) == expected


def test_recovered_only_when_the_reply_repeats_the_pid_sent() -> None:
    assert was_recovered("p1", {"sid": "s", "pid": "p1"})
    assert not was_recovered("p1", {"sid": "s", "pid": "p2"})
    assert not was_recovered("p1", {"sid": "s"})
    assert not was_recovered(None, {"sid": "s", "pid": "p1"})  # nothing asked: a new session
    assert not was_recovered("p1", None)


def test_after_a_recovery_the_latest_offset_is_kept() -> None:
    # Replayed events arrive before the CONNECT reply and move the offset already.
    current = RecoveryState("p1", "1300")

    assert after_connect(current, "p1", {"sid": "s", "pid": "p1"}) == current


def test_after_a_miss_the_new_session_starts_without_offset() -> None:
    current = RecoveryState("p1", "1300")

    assert after_connect(current, "p1", {"sid": "s", "pid": "p9"}) == RecoveryState("p9")


def test_without_a_pid_in_the_reply_there_is_no_session_to_recover() -> None:
    assert after_connect(RecoveryState("p1", "5"), "p1", {"sid": "s"}) == RecoveryState()


def test_rejoins_carry_since_where_a_position_is_known() -> None:
    payloads = rejoin_payloads(["room:a", "room:b"], {"room:a": 41, "room:c": 3})

    assert payloads == [{"room": "room:a", "since": 41}, {"room": "room:b"}]
