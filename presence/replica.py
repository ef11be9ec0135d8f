"""One replica's view of the cluster, without I/O: bucket changes in, frames and clean-ups out.

Every replica folds every change of the presence store into its own
:class:`~presence.state.PresenceState` (``merge`` is newest-wins, so the order changes arrive
in does not matter), so every replica holds the same view and runs the same timers. What this
adds to the state is the cluster: which replicas are alive (:class:`~presence.ownership.Owners`,
from their liveness keys), which runs of which gateways are alive
(:class:`~presence.gateway_runs.GatewayRuns` and the registry's live set), and which of the
events this replica publishes (:func:`presence.frames.frames` of the ones it owns).

**Gateways.** A gateway whose liveness key expires, or that restarts under the same id with a
new boot, has its sockets closed in the state at that moment: their users go offline after
the grace unless they reconnected elsewhere, in which case nothing is announced at all. The
dead run's records are deleted from the store afterwards by the run's owner
(:meth:`Replica.take_drops`, :meth:`Replica.owns_run`).

The shell (:mod:`presence.service`) passes ``now`` to every call and publishes what
:meth:`Replica.take_outgoing` returns, in order.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Collection

from presence.config import PresenceConfig
from presence.events import Event
from presence.frames import frames, update_kind
from presence.gateway_runs import GatewayRuns
from presence.metrics import PresenceMetrics
from presence.ownership import Owners, run_key
from presence.state import Conn, PresenceState
from presence.store import ALIVE, Change
from shared.presence_wire import GatewayBoot, SocketRecord, TypingNotice, decode, instance_of
from shared.subjects import Subjects

log = logging.getLogger(__name__)


class Replica:
    def __init__(self, me: str, config: PresenceConfig, subjects: Subjects,
                 metrics: PresenceMetrics, live: Collection[str], window: float) -> None:
        """``live`` is the registry's set of live gateways (kept current by its watch);
        ``window`` how long events owned by others are kept for a dead owner's successor."""
        self.me = me
        self.config = config
        self.state = PresenceState(config)
        self.owners = Owners(me, window)
        self.runs = GatewayRuns()
        self._left = False
        self._subjects = subjects
        self._metrics = metrics
        self._live = live
        self._outgoing: deque[tuple[str, bytes]] = deque()
        self._drops: list[tuple[str, str]] = []

    # --- what the shell takes ---------------------------------------------------------------

    def take_outgoing(self) -> list[tuple[str, bytes]]:
        """``(subject, body)`` to publish, in the order the events were computed."""
        outgoing = list(self._outgoing)
        self._outgoing.clear()
        return outgoing

    def take_drops(self) -> list[tuple[str, str]]:
        """Dead gateway runs ``(gateway, boot)`` whose records the store should lose once
        every replica has closed them (after the grace)."""
        drops, self._drops = self._drops, []
        return drops

    def take_left(self) -> bool:
        """Whether our own key went (our ``bye``, or an expiry) since the last call: from
        that point in the store's order every replica owns our share. Reported once per
        departure, so a stop waits for its own ``bye`` and not for an older expiry."""
        left, self._left = self._left, False
        return left

    def owns_run(self, gateway: str, boot: str) -> bool:
        """Whether this replica deletes the run's records (asked when the drop is due, so a
        replica that restored the bucket before any liveness key showed up decides too)."""
        return self.owners.owns(run_key(gateway, boot))

    # --- the bucket -------------------------------------------------------------------------

    def restore(self, changes: list[Change], now: float) -> None:
        """Adopt the bucket as it was when following began: nobody is announced again."""
        found: list[SocketRecord] = []
        for change in changes:
            notice = decode(change.value) if change.value is not None else None
            if change.kind == "g" and isinstance(notice, GatewayBoot):
                self.runs.newer(notice.gateway, notice.boot, notice.stamp)
            elif change.kind == "c" and isinstance(notice, SocketRecord):
                found.append(notice)
                self.runs.newer(notice.gateway, notice.boot, notice.stamp)
            elif change.kind == "r" and change.value == ALIVE:
                self._replica_seen(change.parts[0], now)
        records: dict[tuple[str, str], Conn] = {}
        dead: set[tuple[str, str]] = set()
        for record in found:
            self.runs.seen(record.gateway, record.boot)
            if record.alive and not self.runs.is_live(record.gateway, record.boot, self._live):
                dead.add((record.gateway, record.boot))
                continue
            records[(record.instance, record.conn)] = conn_of(record)
        self.state = PresenceState.restore(records, now, self.config)
        self._metrics.online.set(self.state.online_count())
        self._drops += sorted(dead)
        log.info("presence restored %d sockets from the bucket", len(records))

    def apply(self, change: Change, now: float) -> None:
        """One change after the restore."""
        if change.kind == "r":
            self._replica_change(change, now)
            return
        if change.value is None:
            return  # an expired tombstone or typing notice, a purged dead run: nothing to do
        notice = decode(change.value)
        if change.kind == "c" and isinstance(notice, SocketRecord):
            self._record(notice, now)
        elif change.kind == "t" and isinstance(notice, TypingNotice):
            if notice.active:
                self._announce(self.state.typing_start(notice.room, notice.user, now), now)
            else:
                self._announce(self.state.typing_stop(notice.room, notice.user, now), now)
        elif change.kind == "g" and isinstance(notice, GatewayBoot):
            self._take_run(notice.gateway, notice.boot, notice.stamp, now)

    def _record(self, record: SocketRecord, now: float) -> None:
        self.runs.seen(record.gateway, record.boot)
        if record.gateway in self._live:
            self._take_run(record.gateway, record.boot, record.stamp, now)
        if record.alive and not self.runs.is_live(record.gateway, record.boot, self._live):
            record = SocketRecord(record.gateway, record.boot, record.conn, record.user,
                                  record.rooms, False, record.seq, record.stamp)
        self._announce(self.state.merge({(record.instance, record.conn): conn_of(record)},
                                        now), now)

    # --- gateways ---------------------------------------------------------------------------

    def gateway_gone(self, gateway: str, now: float) -> None:
        """The gateway's liveness key expired: every run of it is closed."""
        for boot in self.runs.runs(gateway):
            self._close_run(gateway, boot, now)

    def _take_run(self, gateway: str, boot: str, stamp: float, now: float) -> None:
        for old in self.runs.replaced(gateway, boot, stamp):
            self._close_run(gateway, old, now)

    def _close_run(self, gateway: str, boot: str, now: float) -> None:
        instance = instance_of(gateway, boot)
        if instance in self.state.gateways():
            log.info("gateway %s (boot %s) is gone; closing its sockets", gateway, boot[:6])
            self._metrics.gateways_down.inc()
            self._announce(self.state.gateway_down(instance, now), now)
        self.runs.closed(gateway, boot)
        self._drops.append((gateway, boot))

    # --- replicas ---------------------------------------------------------------------------

    def _replica_change(self, change: Change, now: float) -> None:
        replica = change.parts[0]
        if change.value == ALIVE:
            self._replica_seen(replica, now)
        elif replica in self.owners.replicas:
            self._replica_gone(replica, died=change.value is None, now=now)

    def _replica_seen(self, replica: str, now: float) -> None:
        if replica not in self.owners.replicas:
            log.info("presence replica %s joined", replica)
        orphans = self.owners.seen(replica, now)
        self._metrics.replicas.set(len(self.owners.replicas))
        self._announce(orphans, now)

    def _replica_gone(self, replica: str, died: bool, now: float) -> None:
        if replica == self.me:
            self._left = True
        again = self.owners.gone(replica, died)
        self._metrics.replicas.set(len(self.owners.replicas))
        log.info("presence replica %s %s", replica, "died" if died else "left")
        if again:
            self._metrics.reannounced.inc(len(again))
            self._announce(again, now)

    # --- time and announcing ----------------------------------------------------------------

    def tick(self, now: float) -> None:
        self._announce(self.state.tick(now), now)

    def _announce(self, events: list[Event], now: float) -> None:
        if not events:
            return
        for event in self.owners.mine(events, now):
            framed = frames(event)
            for nsp, room, body in framed:
                self._outgoing.append((self._subjects.fanout(nsp, room), body))
            if framed:
                self._metrics.updates.labels(update_kind(event)).inc()
        self._metrics.online.set(self.state.online_count())


def conn_of(record: SocketRecord) -> Conn:
    return Conn(record.user, record.rooms, record.alive, record.stamp, record.seq)
