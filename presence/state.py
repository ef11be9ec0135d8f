"""Presence as pure state: connections in, user/room/typing diffs out (STYLE.md item 10).

No I/O, no clocks: every mutation takes ``now`` (seconds) and returns the events it implies;
:meth:`PresenceState.tick` returns what has become due and :meth:`PresenceState.next_deadline`
says when to call it next. The shell (NATS consumer, KV writer, fan-out) owns one timer.

**Online reaches rooms.** ``online`` and ``offline`` go to the rooms the user is announced
in. A user who comes online is in no room yet, so ``online`` is announced again, to those
rooms, when the user gets their first room (after the ``joined``); ``offline`` goes out before
the ``left`` events of the same departure, so rooms hear both, in mirror order.

**Why per connection, announced per user.** The source of truth is one record per
``(gateway, connection id)``; subscribers only ever hear about *users*. A user goes ``online``
on its first live connection (immediately) and ``offline`` only after ``grace`` seconds with
none, so a second tab, a reconnect, a network blip or a gateway drain that moves the user to
another gateway within the grace produces no events at all. Room membership follows the same
rule per ``(room, user)``: ``joined`` on the user's first socket in the room, ``left`` after the
grace once the last one has gone. Arrivals are never delayed (a join shown late looks broken;
a leave shown late is invisible).

**Gateway death** (:meth:`PresenceState.gateway_down`) marks that gateway's connections as
closed at ``now``; it is just many disconnects, so users who reconnect elsewhere within the
grace produce nothing. A gateway comes back implicitly with its first connection.

**Typing** is a TTL per ``(room, user)``: ``typing:start`` only when not already typing
(repeated starts just refresh the TTL, so a keystroke stream is one event), ``typing:stop`` on
an explicit stop, on TTL expiry, or at once when the user's last socket leaves the room
(nobody types into a closed tab; a reconnecting client simply starts again). Typing is
ephemeral and replica-local: it is neither merged nor restored.

**Big rooms.** A room with more than ``big_room`` announced members gets no per-user
``joined``/``left`` events, nor its members' ``online``/``offline`` (their smaller rooms still
do); instead it gets at most one :class:`RoomCount` per ``summary_interval``. The first change
after a quiet interval is summarised at once, later changes within the interval are folded into
one summary at the interval's end carrying the count at that time. The change that takes a room
over the threshold, or back down to it, is also summarised (the count tells clients the list is
stale; they refetch ``room:presence``); below the threshold per-user events resume. Membership
itself (and so ``members``) is exact regardless; only the announcements are thinned.

**Replicas.** Each record carries ``(stamp, seq)``; :meth:`PresenceState.merge` keeps the
newest record per key (closed records are kept as tombstones for ``tombstone_ttl`` so a stale
"open" cannot resurrect a closed connection) and returns the diffs that implies, departures
counted from the time the other replica saw them. A restarting replica uses
:meth:`PresenceState.restore`, which adopts a snapshot *without* announcing anyone (the
phoenix ``permdown_on_shutdown`` point: a restart must not cause a leave/join storm); it only
re-schedules departures that were still within their grace, since the previous owner cannot
have announced those yet (a duplicate ``offline`` is harmless, a lost one leaves a ghost).

Rooms are opaque strings; callers that need namespaces put them in the room key.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar

from presence.config import PresenceConfig
from presence.events import Event, RoomChange, RoomCount, Typing, UserStatus

__all__ = [  # the events and the config are re-exported for bench/presence_fill.py
    "Conn", "ConnKey", "Event", "PresenceConfig", "PresenceState", "RoomChange", "RoomCount",
    "Typing", "UserStatus",
]

K = TypeVar("K")
V = TypeVar("V")

ConnKey = tuple[str, str]
"""``(gateway, connection id)``."""


@dataclass(frozen=True, slots=True)
class Conn:
    """One connection's record; ``alive=False`` is a tombstone. Newest wins on merge."""

    user: str
    rooms: frozenset[str] = frozenset()
    alive: bool = True
    stamp: float = 0.0
    seq: int = 0

    def order(self) -> tuple[float, int, bool, tuple[str, ...]]:
        """Total order for "newest wins": later stamp, then more local changes, then a
        tombstone over a live record, then rooms (only so ties resolve the same everywhere)."""
        return (self.stamp, self.seq, not self.alive, tuple(sorted(self.rooms)))


# Heap entry kinds; at equal deadlines typing stops go first, then offline (routed to the
# user's rooms, so before the lefts remove them), then lefts, then summaries.
_TYPING, _OFFLINE, _LEFT, _SUMMARY = 0, 1, 2, 3


@dataclass(slots=True)
class PresenceState:
    config: PresenceConfig = field(default_factory=PresenceConfig)
    _conns: dict[ConnKey, Conn] = field(default_factory=dict)
    # Indexes over live records only.
    _by_user: dict[str, set[ConnKey]] = field(default_factory=dict)
    _by_gateway: dict[str, set[str]] = field(default_factory=dict)
    _sockets: dict[str, dict[str, int]] = field(default_factory=dict)  # room -> user -> n
    # What subscribers have been told.
    _online: set[str] = field(default_factory=set)
    _members: dict[str, set[str]] = field(default_factory=dict)
    _user_rooms: dict[str, set[str]] = field(default_factory=dict)
    # Pending work: key -> deadline; the heap holds (deadline, kind, key), stale entries are
    # skipped when the dict no longer holds that deadline.
    _offline_due: dict[str, float] = field(default_factory=dict)
    _left_due: dict[tuple[str, str], float] = field(default_factory=dict)
    _typing: dict[tuple[str, str], float] = field(default_factory=dict)
    _summary_due: dict[str, float] = field(default_factory=dict)
    _last_summary: dict[str, float] = field(default_factory=dict)
    _heap: list[tuple[float, int, str | tuple[str, str]]] = field(default_factory=list)
    _next_prune: float = float("-inf")

    # ---- construction ------------------------------------------------------------------

    @classmethod
    def restore(
        cls, records: Mapping[ConnKey, Conn], now: float, config: PresenceConfig | None = None
    ) -> PresenceState:
        """Adopt a snapshot as already announced: no events now, only departures still within
        their grace are re-scheduled (see the module docstring)."""
        state = cls(config or PresenceConfig())
        grace = state.config.grace
        for key, conn in records.items():
            state._conns[key] = conn
            if conn.alive:
                state._index(key, conn, +1)
        for user in state._by_user:
            state._online.add(user)
        for room, users in state._sockets.items():
            for user in users:
                state._announce_member(room, user)
        offline: dict[str, float] = {}
        left: dict[tuple[str, str], float] = {}
        for conn in records.values():
            deadline = conn.stamp + grace
            if conn.alive or deadline <= now:
                continue
            if conn.user not in state._by_user:
                offline[conn.user] = max(deadline, offline.get(conn.user, deadline))
            for room in conn.rooms:
                if conn.user not in state._sockets.get(room, {}):
                    key = (room, conn.user)
                    left[key] = max(deadline, left.get(key, deadline))
        for user, deadline in offline.items():
            state._online.add(user)
            state._schedule_offline(user, deadline)
        for (room, user), deadline in left.items():
            state._announce_member(room, user)
            state._schedule_left(room, user, deadline)
        return state

    # ---- changes this replica sees first ------------------------------------------------

    def gateway_down(self, gateway: str, now: float) -> list[Event]:
        """Close every live connection of ``gateway`` as if each had left at ``now``; each
        close is stamped so it beats the record it replaces on every replica."""
        events: list[Event] = []
        for conn_id in sorted(self._by_gateway.get(gateway, ())):
            key = (gateway, conn_id)
            old = self._conns[key]
            closed = replace(old, alive=False, stamp=max(now, old.stamp), seq=old.seq + 1)
            events += self._apply(key, closed, now, since=now)
        return events

    def typing_start(self, room: str, user: str, now: float) -> list[Event]:
        """Start or refresh typing; only a user with a socket in the room can type there."""
        if user not in self._sockets.get(room, {}):
            return []
        key = (room, user)
        started = key not in self._typing
        deadline = now + self.config.typing_ttl
        self._typing[key] = deadline
        heapq.heappush(self._heap, (deadline, _TYPING, key))
        return [Typing(room, user, True)] if started else []

    def typing_stop(self, room: str, user: str, now: float) -> list[Event]:
        if self._typing.pop((room, user), None) is None:
            return []
        return [Typing(room, user, False)]

    # ---- replicas ----------------------------------------------------------------------

    def merge(self, records: Mapping[ConnKey, Conn], now: float) -> list[Event]:
        """Take the newest record per key from ``records``; return the arrivals it implies
        plus whatever is due at ``now`` (departures are timed from the record's stamp)."""
        events: list[Event] = []
        for key, theirs in sorted(records.items(), key=lambda item: item[1].order()):
            ours = self._conns.get(key)
            if ours is None or theirs.order() > ours.order():
                events += self._apply(key, theirs, now, since=min(theirs.stamp, now))
        return events + self.tick(now)

    # ---- time --------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do, ``None`` if nothing is pending."""
        heap = self._heap
        while heap and not self._live(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def tick(self, now: float) -> list[Event]:
        """Everything due at ``now``, in deadline order; also drops old tombstones."""
        events: list[Event] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if not self._live(entry):
                continue
            _, kind, key = entry
            if kind == _TYPING and isinstance(key, tuple):
                del self._typing[key]
                events.append(Typing(key[0], key[1], False))
            elif kind == _OFFLINE and isinstance(key, str):
                del self._offline_due[key]
                self._online.discard(key)
                events.append(UserStatus(key, "offline", self._audience(key)))
            elif kind == _LEFT and isinstance(key, tuple):
                del self._left_due[key]
                room, user = key
                before = len(self._members.get(room, ()))
                self._retract_member(room, user)
                events += self._room_change(room, user, "left", now, before)
            elif kind == _SUMMARY and isinstance(key, str):
                del self._summary_due[key]
                self._last_summary[key] = now
                events.append(RoomCount(key, len(self._members.get(key, ()))))
        if now >= self._next_prune:
            self._prune(now)
        return events

    # ---- queries -----------------------------------------------------------------------

    def online_count(self) -> int:
        return len(self._online)

    def gateways(self) -> set[str]:
        """Gateways with live connections."""
        return set(self._by_gateway)

    def members(self, room: str) -> dict[str, int]:
        """Announced members and their live socket counts (0 while within the grace)."""
        sockets = self._sockets.get(room, {})
        return {user: sockets.get(user, 0) for user in self._members.get(room, ())}

    # ---- internals ---------------------------------------------------------------------

    def _apply(self, key: ConnKey, new: Conn, now: float, since: float) -> list[Event]:
        """Replace one record and settle every user and membership it touched. ``since`` is
        when a departure happened (the grace counts from there)."""
        old = self._conns.get(key)
        self._conns[key] = new
        touched: set[tuple[str, str]] = set()
        users: list[str] = []
        for conn, sign in ((old, -1), (new, +1)):
            if conn is not None and conn.alive:
                self._index(key, conn, sign)
                users.append(conn.user)
                touched.update((room, conn.user) for room in conn.rooms)
        events: list[Event] = []
        had_rooms = {user: bool(self._user_rooms.get(user)) for user in users}
        for user in dict.fromkeys(users):
            events += self._settle_user(user, since)
        for room, user in sorted(touched):
            events += self._settle_member(room, user, now, since)
        for user, had in had_rooms.items():
            rooms = self._user_rooms.get(user)
            if not had and rooms and user in self._online and user not in self._offline_due:
                online = UserStatus(user, "online", self._audience(user))
                events = [e for e in events if e != online]  # one with no audience
                events.append(online)
        return events

    def _index(self, key: ConnKey, conn: Conn, sign: int) -> None:
        gateway, conn_id = key
        if sign > 0:
            self._by_user.setdefault(conn.user, set()).add(key)
            self._by_gateway.setdefault(gateway, set()).add(conn_id)
            for room in conn.rooms:
                users = self._sockets.setdefault(room, {})
                users[conn.user] = users.get(conn.user, 0) + 1
            return
        _discard(self._by_user, conn.user, key)
        _discard(self._by_gateway, gateway, conn_id)
        for room in conn.rooms:
            users = self._sockets[room]
            users[conn.user] -= 1
            if not users[conn.user]:
                del users[conn.user]
                if not users:
                    del self._sockets[room]

    def _settle_user(self, user: str, since: float) -> list[Event]:
        if user in self._by_user:
            if self._offline_due.pop(user, None) is not None or user in self._online:
                return []  # came back within the grace, or another tab
            self._online.add(user)
            return [UserStatus(user, "online", self._audience(user))]
        if user in self._online and user not in self._offline_due:
            self._schedule_offline(user, since + self.config.grace)
        return []

    def _settle_member(self, room: str, user: str, now: float, since: float) -> list[Event]:
        key = (room, user)
        if user in self._sockets.get(room, {}):
            if self._left_due.pop(key, None) is not None or user in self._members.get(room, ()):
                return []
            before = len(self._members.get(room, ()))
            self._announce_member(room, user)
            return self._room_change(room, user, "joined", now, before)
        events: list[Event] = self.typing_stop(room, user, now)
        if user in self._members.get(room, ()) and key not in self._left_due:
            self._schedule_left(room, user, since + self.config.grace)
        return events

    def _audience(self, user: str) -> frozenset[str]:
        """The rooms that hear a user's online/offline: those the user was announced in,
        except big rooms (their summaries carry the count; a per-user status there would be
        the same storm as per-user joins)."""
        big = self.config.big_room
        return frozenset(room for room in self._user_rooms.get(user, ())
                         if len(self._members.get(room, ())) <= big)

    def _room_change(
        self, room: str, user: str, status: Literal["joined", "left"], now: float, before: int
    ) -> list[Event]:
        after = len(self._members.get(room, ()))
        if max(before, after) <= self.config.big_room:
            if not after:
                self._last_summary.pop(room, None)
            return [RoomChange(room, user, status)]
        if room in self._summary_due:
            return []
        last = self._last_summary.get(room)
        due = now if last is None else max(now, last + self.config.summary_interval)
        if due <= now:
            self._last_summary[room] = now
            return [RoomCount(room, after)]
        self._summary_due[room] = due
        heapq.heappush(self._heap, (due, _SUMMARY, room))
        return []

    def _announce_member(self, room: str, user: str) -> None:
        self._members.setdefault(room, set()).add(user)
        self._user_rooms.setdefault(user, set()).add(room)

    def _retract_member(self, room: str, user: str) -> None:
        _discard(self._members, room, user)
        _discard(self._user_rooms, user, room)

    def _schedule_offline(self, user: str, deadline: float) -> None:
        self._offline_due[user] = deadline
        heapq.heappush(self._heap, (deadline, _OFFLINE, user))

    def _schedule_left(self, room: str, user: str, deadline: float) -> None:
        self._left_due[(room, user)] = deadline
        heapq.heappush(self._heap, (deadline, _LEFT, (room, user)))

    def _live(self, entry: tuple[float, int, str | tuple[str, str]]) -> bool:
        deadline, kind, key = entry
        if kind == _TYPING:
            return isinstance(key, tuple) and self._typing.get(key) == deadline
        if kind == _OFFLINE:
            return isinstance(key, str) and self._offline_due.get(key) == deadline
        if kind == _LEFT:
            return isinstance(key, tuple) and self._left_due.get(key) == deadline
        return isinstance(key, str) and self._summary_due.get(key) == deadline

    def _prune(self, now: float) -> None:
        """Forget tombstones older than ``tombstone_ttl``: by then every replica has them."""
        horizon = now - self.config.tombstone_ttl
        dead = [k for k, c in self._conns.items() if not c.alive and c.stamp <= horizon]
        for key in dead:
            del self._conns[key]
        self._next_prune = now + self.config.tombstone_ttl / 2


def _discard(index: dict[K, set[V]], key: K, value: V) -> None:
    values = index.get(key)
    if values is not None:
        values.discard(value)
        if not values:
            del index[key]
