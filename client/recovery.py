"""Connection-state recovery (Socket.IO v4.6+ semantics) as pure functions.

In a durable namespace the CONNECT reply carries a ``pid`` and every server EVENT without an
ack id carries the recovery offset, a string, as its last argument. The client remembers both
and sends ``{token, pid, offset}`` on reconnect; the gateway writes the missed events before
its CONNECT reply and answers with the same ``pid`` when it recovered the session
(``socketio-notes.md`` §3). Everything the shell needs to decide is here, so every rule is a
plain function call in the tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class RecoveryState:
    """What one namespace needs to ask for its session back."""

    pid: str | None = None
    offset: str | None = None

    def with_offset(self, offset: str) -> RecoveryState:
        return RecoveryState(self.pid, offset)


def connect_auth(token: str, state: RecoveryState, enabled: bool) -> dict[str, Any]:
    """The CONNECT payload (Socket.IO ``auth``) for one namespace.

    ``offset`` is left out until an event carried one: the gateway then replays from the
    session's start position (the hole socket.io#4888 leaves open in the reference server).
    With recovery off the gateway is told so, and then sends neither pid nor offsets, which
    clients without recovery support would take for an extra handler argument.
    """
    if not enabled:
        return {"token": token, "recovery": False}
    auth: dict[str, Any] = {"token": token}
    if state.pid is not None:
        auth["pid"] = state.pid
        if state.offset is not None:
            auth["offset"] = state.offset
    return auth


def split_offset(args: Sequence[Any], pid_known: bool,
                 has_ack_id: bool) -> tuple[list[Any], str | None]:
    """Separate an event's arguments (name excluded) from its trailing recovery offset.

    As socket.io-client does, only a session that holds a pid strips, and only a string last
    argument of an event that does not ask for an ack is an offset; the gateway never ends
    such an event in a payload string, so nothing the app sent is mistaken for one.
    """
    if pid_known and not has_ack_id and args and isinstance(args[-1], str):
        return list(args[:-1]), args[-1]
    return list(args), None


def was_recovered(sent_pid: str | None, reply: Mapping[str, Any] | None) -> bool:
    """The session came back iff the reply names the pid the client asked for."""
    if sent_pid is None or not isinstance(reply, Mapping):
        return False
    return reply.get("pid") == sent_pid


def after_connect(current: RecoveryState, sent_pid: str | None,
                  reply: Mapping[str, Any] | None) -> RecoveryState:
    """The state to keep once the CONNECT reply is in.

    Recovered: the same session goes on; every event that carried an offset moved
    ``current`` already (the gateway writes its replay right after the reply, Socket.IO's own
    server right before it), and the rest will. Not recovered: a new session (its
    pid, or none when the gateway keeps no session) with no offset yet.
    """
    if was_recovered(sent_pid, reply):
        return current
    pid = reply.get("pid") if isinstance(reply, Mapping) else None
    return RecoveryState(pid if isinstance(pid, str) else None, None)


def rejoin_payloads(rooms: Sequence[str],
                    positions: Mapping[str, int]) -> list[dict[str, Any]]:
    """``room:join`` payloads that bring back rooms a non-recovered reconnect lost.

    Each carries ``since`` (the last ``seq`` delivered in that room) when there is one, so the
    gateway replays what was missed before acking the join.
    """
    payloads: list[dict[str, Any]] = []
    for room in rooms:
        payload: dict[str, Any] = {"room": room}
        if room in positions:
            payload["since"] = positions[room]
        payloads.append(payload)
    return payloads
