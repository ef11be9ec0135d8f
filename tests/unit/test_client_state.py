"""Connection states: the legal transitions, listeners called in order, reasons kept."""

from __future__ import annotations

import pytest

from client.state import ConnectionState, DisconnectReason, StateMachine

S = ConnectionState


def test_a_full_life_is_reported_in_order() -> None:
    machine = StateMachine()
    seen: list[tuple[S, S]] = []
    machine.subscribe(lambda old, new: seen.append((old, new)))

    machine.move(S.CONNECTING)
    machine.move(S.CONNECTED)
    machine.move(S.RECONNECTING, DisconnectReason("transport", "ping timeout"))
    machine.move(S.CONNECTED)
    machine.move(S.DISCONNECTED, DisconnectReason("server_disconnect", "io server disconnect",
                                                  "/chat"))

    assert seen == [(S.DISCONNECTED, S.CONNECTING), (S.CONNECTING, S.CONNECTED),
                    (S.CONNECTED, S.RECONNECTING), (S.RECONNECTING, S.CONNECTED),
                    (S.CONNECTED, S.DISCONNECTED)]
    assert machine.reason is not None and machine.reason.terminal


@pytest.mark.parametrize(("path", "illegal"), [
    ([], S.CONNECTED),
    ([], S.RECONNECTING),
    ([S.CONNECTING], S.RECONNECTING),
    ([S.CONNECTING, S.CONNECTED], S.CONNECTING),
])
def test_illegal_transitions_raise(path: list[S], illegal: S) -> None:
    machine = StateMachine()
    for state in path:
        machine.move(state)

    with pytest.raises(RuntimeError):
        machine.move(illegal)


def test_moving_to_the_current_state_is_silent() -> None:
    machine = StateMachine()
    seen: list[object] = []
    machine.subscribe(lambda old, new: seen.append(new))

    assert not machine.move(S.DISCONNECTED)
    assert seen == []


def test_a_failing_listener_does_not_stop_the_others() -> None:
    machine = StateMachine()
    seen: list[S] = []

    def broken(old: S, new: S) -> None:
        raise RuntimeError("app bug")

    machine.subscribe(broken)
    machine.subscribe(lambda old, new: seen.append(new))
    machine.move(S.CONNECTING)

    assert seen == [S.CONNECTING]


def test_only_transport_losses_are_recoverable() -> None:
    assert not DisconnectReason("transport", "closed").terminal
    for kind in ("server_disconnect", "connect_error", "client_close"):
        assert DisconnectReason(kind).terminal
