"""Per-room sequence tracking: exactly-once, in-order delivery from the app's point of view.

Every ``message:received`` of a durable namespace carries ``seq`` (its position in the
namespace's log) and ``prev`` (the previous ``seq`` of the same room, 0 for the first). With
the last ``seq`` delivered per room the tracker knows what each message is (the verdict is
:mod:`shared.chain`'s, as the gateway's): a duplicate, the next one, or proof of a gap, which
the shell fills from ``room:history`` while later messages of that room wait. Pure: the shell
does the fetching and hands the pages back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from client.merge import Message, merge_messages, position_of
from shared.chain import DUPLICATE, observe
from shared.chain import Gap as ChainGap


@dataclass(frozen=True, slots=True)
class Deliver:
    messages: tuple[Message, ...]


@dataclass(frozen=True, slots=True)
class Drop:
    """Already delivered: a duplicate."""

    room: str
    seq: int


@dataclass(frozen=True, slots=True)
class Hold:
    """The room is being filled; the message waits for the fill."""

    room: str
    seq: int


@dataclass(frozen=True, slots=True)
class Fetch:
    """Ask ``room:history {room, since}`` and hand the answer to :meth:`SequenceTracker.fill`."""

    room: str
    since: int


@dataclass(frozen=True, slots=True)
class Gap:
    """Messages of ``room`` with ``after < seq <= upto`` are lost for good (the log no longer
    has them); the app is told instead of being shown a history with a silent hole."""

    room: str
    after: int
    upto: int
    reason: str
    namespace: str | None = None


@dataclass(frozen=True, slots=True)
class FillOutcome:
    """What a fill step releases, in order: messages, and each hole just before the message
    that follows it; ``fetch`` when the page did not reach the held messages."""

    items: tuple[Message | Gap, ...] = ()
    fetch: Fetch | None = None

    @property
    def messages(self) -> tuple[Message, ...]:
        return tuple(item for item in self.items if not isinstance(item, Gap))

    @property
    def gaps(self) -> tuple[Gap, ...]:
        return tuple(item for item in self.items if isinstance(item, Gap))


Verdict = Deliver | Drop | Hold | Fetch


@dataclass(slots=True)
class SequenceTracker:
    """Last delivered ``seq`` per room of one namespace, and the messages held per room
    while a gap is being filled."""

    _last: dict[str, int] = field(default_factory=dict)
    _held: dict[str, list[Message]] = field(default_factory=dict)

    @classmethod
    def starting_at(cls, positions: Mapping[str, int]) -> SequenceTracker:
        """Resume from positions saved by an earlier run, so its messages stay duplicates."""
        return cls(dict(positions))

    def last(self, room: str) -> int | None:
        return self._last.get(room)

    def positions(self) -> dict[str, int]:
        return dict(self._last)

    def filling(self, room: str) -> bool:
        return room in self._held

    def receive(self, message: Message) -> Verdict:
        pos = position_of(message)
        if pos is None:
            return Deliver((message,))
        verdict = observe(self._last.get(pos.room), pos.seq, pos.prev)
        if verdict is DUPLICATE:
            return Drop(pos.room, pos.seq)
        held = self._held.get(pos.room)
        if held is not None:
            if any(_seq(m) == pos.seq for m in held):
                return Drop(pos.room, pos.seq)
            held.append(message)
            return Hold(pos.room, pos.seq)
        if isinstance(verdict, ChainGap):
            self._held[pos.room] = [message]
            return Fetch(pos.room, verdict.after)
        self._last[pos.room] = pos.seq
        return Deliver((message,))

    def fill(self, room: str, page: Iterable[Message], complete: bool) -> FillOutcome:
        """Merge one ``room:history`` page with the held messages.

        A page that chained on from the position but did not reach the held messages (its
        ``limit`` cut it) asks for the next page: every step makes progress, so the fill
        ends. A page that does not chain on (the log no longer has the start of the hole,
        ``complete: false``, or nothing came back) ends the fill with the hole reported.
        """
        held = self._held.pop(room, [])
        last = self._last.get(room, 0)
        merged = merge_messages(last, page, held)
        if merged.contiguous:
            self._last[room] = merged.end
        if merged.ok:
            return FillOutcome(merged.contiguous)
        if merged.contiguous:
            self._held[room] = list(merged.rest)
            return FillOutcome(merged.contiguous, Fetch(room, merged.end))
        reason = "incomplete" if not complete else "missing"
        return FillOutcome(merged.contiguous + self._accept_holes(room, merged.rest, reason))

    def give_up(self, room: str, reason: str) -> FillOutcome:
        """The history could not be fetched (``not_recoverable``, failure): deliver what is
        held, in order, and report each hole."""
        held = self._held.pop(room, [])
        merged = merge_messages(self._last.get(room, 0), (), held)
        if merged.contiguous:
            self._last[room] = merged.end
        return FillOutcome(merged.contiguous + self._accept_holes(room, merged.rest, reason))

    def _accept_holes(self, room: str, ordered: tuple[Message, ...],
                      reason: str) -> tuple[Message | Gap, ...]:
        """Release sorted messages past holes that cannot be filled, each hole first."""
        last = self._last.get(room, 0)
        items: list[Message | Gap] = []
        for message in ordered:
            pos = position_of(message)
            assert pos is not None
            if pos.prev > last:
                items.append(Gap(room, last, pos.prev, reason))
            items.append(message)
            last = pos.seq
        if ordered:
            self._last[room] = last
        return tuple(items)


def _seq(message: Message) -> int | None:
    pos = position_of(message)
    return pos.seq if pos is not None else None
