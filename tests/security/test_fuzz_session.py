"""Fuzzing the pure session core: after a valid CONNECT to ``/chat``, any sequence of frames
(text and binary, ``now`` increasing, heartbeat timers in between) is handled without raising.

What every run checks, frame by frame:

* every action is one of :mod:`gateway.actions`' types;
* an EVENT that carries an ack id on a connected namespace gets exactly one answer unless the
  frame closed the connection: an ACK frame ``43<nsp>,<id>[...]`` or a deferred action
  (``Join``/``Leave``/``Publish``/``History``/``TypingChange``/
  ``PresenceQuery``) whose ``reply`` the shell acks; nothing else
  is acked. Binary events are answered by the frame that completes them. The oracle reads the
  header with its own regular expression, not with the parser under test;
* a malformed text packet (one ``parse_packet`` refuses) gets exactly one answer while a
  namespace is connected: an error ack or a ``request:error``;
* every frame the core writes is well formed: acks are ``[{"ok": ...}]`` with a stable error
  code, events are ``request:error``, server DISCONNECTs carry no payload;
* rooms in actions are valid names and never another user's room (subject injection), and a
  published ``message:send`` text is sanitised (no Cc except ``\\n``/``\\t``, no Bidi_Control).

After the garbage, a well-formed ``room:join`` still gets its answer unless the connection
closed or ``/chat`` was disconnected.

Counting: one input is one frame given to ``Session.receive``; ``COUNTS["session"]`` totals
them (terminal summary) and each property asserts how many it fed. Most frames come from
hypothesis-seeded :class:`~tests.security.strategies.Garbage` (fast); one property draws its
frames from hypothesis strategies directly (slower, shrinks better).
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import namespaces
from gateway.actions import (
    Action,
    Close,
    History,
    Join,
    Leave,
    Opened,
    PresenceQuery,
    Publish,
    SendBinary,
    SendText,
    TypingChange,
)
from gateway.limits import Limits
from gateway.middleware import Namespace
from gateway.namespaces import NAMESPACES
from gateway.session import Session, SessionConfig
from shared.jwtauth import TokenVerifier
from shared.protocol.engineio import EioPacket, EioType, parse_frame
from shared.protocol.errors import CloseCode, ErrorCode
from shared.protocol.packets import (
    MAX_ATTACHMENTS,
    MAX_NAMESPACE_LENGTH,
    InvalidPacket,
    parse_packet,
)
from shared.sanitize import BIDI_CONTROL
from shared.subjects import is_valid_room_name
from tests.security.strategies import COUNTS, PACKET_TEXT, SEEDS, Garbage, dumps
from tests.support.tokens import SECRET, make_token

VERIFIER = TokenVerifier(("HS256",), secret=SECRET)
ALICE = make_token("alice")
ACTION_TYPES = get_args(Action)
DEFERRED = (Join, Publish, History, TypingChange, PresenceQuery)
"""Actions answered once their I/O is fed back (a Leave's ack comes with it)."""
ERROR_CODES = frozenset(code.value for code in ErrorCode)
HIGH = Limits(chat_rate=1e6, chat_burst=10**6, request_rate=1e6, request_burst=10**6)
TIGHT = Limits(chat_rate=1, chat_burst=2, request_rate=1, request_burst=2)

# The oracle reads "<type>[N-][<nsp>,]<ack id>" independently of parse_packet.
ACK_HEADER = re.compile(
    r"(?:([0-4])|([56])([0-9]{1,2})-)(?:(/[^,]*),)?([0-9]{1,15})(?![0-9])")
SERVER_PACKET = re.compile(r"4([0-6])(?:(/[^,]*),)?([0-9]*)(.*)", re.DOTALL)
SERVER_DISCONNECT = re.compile(r"41(?:/[^,]*,)?")
FORBIDDEN_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f" + BIDI_CONTROL + "]")


def fuzz(examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


Key = tuple[str, int]


@dataclass(frozen=True)
class Owed:
    """The ack a frame's header names on a connected namespace: an EVENT (``must``) gets
    exactly one; other packet types get at most one (an error ack when they are malformed;
    a valid DISCONNECT, ACK or CONNECT is not answered with an ack)."""

    key: Key
    must: bool


def owed_ack(frame: str | bytes, connected: set[str]) -> Owed | None:
    if not isinstance(frame, str) or not frame.startswith("4"):
        return None
    match = ACK_HEADER.match(frame, 1)
    if match is None:
        return None
    plain, binary, count, raw_nsp, ack = match.groups()
    if count is not None and int(count) > MAX_ATTACHMENTS:
        return None
    nsp = (raw_nsp or "/").split("?", 1)[0]
    if len(nsp) > MAX_NAMESPACE_LENGTH or nsp not in connected:
        return None
    return Owed((nsp, int(ack)), must=(plain or binary) in "25")


def answered(actions: list[Action]) -> list[Key]:
    """Ack answers in ``actions``: ACK frames, and deferred actions the shell will ack."""
    keys = []
    for action in actions:
        if isinstance(action, SendText):
            match = SERVER_PACKET.fullmatch(action.text)
            if match and match.group(1) in "36":
                keys.append((match.group(2) or "/", int(match.group(3))))
        elif isinstance(action, DEFERRED) and action.reply.id is not None:
            keys.append((action.reply.nsp, action.reply.id))
    return keys


def check_written(actions: list[Action], sub: str) -> None:
    """Everything the core writes or asks the shell to do is well formed and safe."""
    for action in actions:
        assert isinstance(action, ACTION_TYPES), action
        if isinstance(action, SendText):
            check_frame_out(action.text)
        elif isinstance(action, SendBinary):
            assert isinstance(action.data, bytes)
        elif isinstance(action, Close):
            assert action.code in {1000, *CloseCode}, action
        elif isinstance(action, DEFERRED):
            room = action.room
            assert is_valid_room_name(room), action
            if not isinstance(action, Leave):
                assert not room.startswith("user:") or room == f"user:{sub}", action
        if isinstance(action, Publish):
            args = json.loads(action.args)
            assert isinstance(args, list) and isinstance(args[0], str)
            if args[0] == "message:received":
                message = args[1]
                assert message["from"] == sub and message["room"] == action.room
                assert not FORBIDDEN_TEXT.search(message["text"]), message
                assert 1 <= len(message["id"]) <= 64 and message["id"] == action.message_id


def check_frame_out(text: str) -> None:
    if text == "2" or text.startswith("0{"):
        return
    match = SERVER_PACKET.fullmatch(text)
    assert match, text
    kind, _nsp, ack, rest = match.groups()
    if kind == "1":
        assert SERVER_DISCONNECT.fullmatch(text), text  # never a payload
        return
    body = json.loads(rest)
    if kind == "0":
        assert isinstance(body["sid"], str)
    elif kind == "4":
        assert isinstance(body["message"], str)
    elif kind == "3":
        assert ack and isinstance(body, list) and len(body) == 1, text
        answer = body[0]
        assert isinstance(answer["ok"], bool)
        if not answer["ok"]:
            check_error(answer["error"])
    elif kind == "2":
        assert not ack and body[0] == "request:error" and len(body) == 2, text
        check_error(body[1])
    else:
        raise AssertionError(f"unexpected frame {text!r}")


def check_error(error: dict[str, Any]) -> None:
    assert error["code"] in ERROR_CODES and isinstance(error["message"], str), error
    if error["code"] == "rate_limited":
        assert isinstance(error["retry_after_ms"], int) and error["retry_after_ms"] > 0


@dataclass
class Run:
    """One connection's session driven like the shell drives it, checked frame by frame."""

    session: Session
    now: float = 0.0
    closed: bool = False
    fed: int = 0
    pending: Owed | None = None
    codes: Counter[str] = field(default_factory=Counter)

    @classmethod
    def connected(cls, limits: Limits | None = None,
                  table: Mapping[str, Namespace] = NAMESPACES) -> Run:
        ids = (f"id-{n}" for n in itertools.count())
        config = SessionConfig(limits=limits or Limits())
        session = Session("eio", None, config, table, VERIFIER,
                          lambda: next(ids), 0.0, wall_clock=lambda: 1_764_662_400.0)
        run = cls(session)
        opened = run.feed("40/chat," + dumps({"token": ALICE}))
        assert any(isinstance(a, Opened) for a in opened) and "/chat" in session.sockets
        return run

    def feed(self, frame: str | bytes) -> list[Action]:
        assert not self.closed
        pending_before = self.session._assembler.pending
        connected = set(self.session.sockets)
        owed = owed_ack(frame, connected)
        actions = self.session.receive(frame, self.now)
        self.fed += 1
        check_written(actions, "alice")
        got = answered(actions)
        pending_after = self.session._assembler.pending
        if any(isinstance(a, Close) for a in actions):
            self.closed = True
            self.codes["close"] += 1
            allowed = [o.key for o in (owed, self.pending) if o is not None]
            assert all(key in allowed for key in got), (frame, actions)
            close = next(a for a in actions if isinstance(a, Close))
            if close.reason.startswith("abuse"):
                # a bare DISCONNECT per namespace, before the transport closes with 1008
                texts = [a.text for a in actions[:actions.index(close)]
                         if isinstance(a, SendText)]
                assert "41/chat," in texts and close.code == CloseCode.POLICY, actions
                assert self.session.sockets == {}
                self.codes["abuse disconnects"] += 1
            return actions
        due: Owed | None = None
        eio = parse_frame(frame)
        if isinstance(eio, EioPacket) and eio.type is EioType.MESSAGE and isinstance(
                eio.data, bytes):
            if pending_before and not pending_after:
                due, self.pending = self.pending, None
        elif pending_after and not pending_before:
            self.pending = owed
        else:
            due = owed
        if (isinstance(eio, EioPacket) and eio.type is EioType.MESSAGE and connected
                and isinstance(eio.data, str)
                and isinstance(parse_packet(eio.data), InvalidPacket)):
            # a malformed packet is answered once: an error ack or a request:error
            replies = [a for a in actions if isinstance(a, SendText)
                       and re.match(r'4(3|2(/[^,]*,)?\["request:error")', a.text)]
            assert len(replies) == 1, (frame, actions)
            self.codes["malformed answered"] += 1
        if due is None:
            assert got == [], (frame, actions)
        elif due.must:
            assert got == [due.key], (frame, actions)
        else:
            assert got in ([], [due.key]), (frame, actions)
        self.codes["answered"] += len(got)
        self.shell(actions)
        return actions

    def shell(self, actions: list[Action]) -> None:
        """What the shell feeds back that the core relies on: joins done, sockets opened."""
        for action in actions:
            if isinstance(action, Join) and action.socket.nsp in self.session.sockets:
                answers = self.session.joined(action)
            elif isinstance(action, Opened) and action.socket.durable:
                answers = self.session.opened(action.socket)
            else:
                continue
            for answer in answers:
                if isinstance(answer, SendText):
                    check_frame_out(answer.text)

    def tick(self, dt: float) -> None:
        self.now += dt
        actions = self.session.on_timer(self.now)
        check_written(actions, "alice")
        if any(isinstance(a, Close) for a in actions):
            self.closed = True
            self.codes["timer close"] += 1


# --- frames -------------------------------------------------------------------------------

SESSION_NSPS = ["/chat"] * 40 + ["/chat?x=1", "/", "/live-updates", "/nope", "/notifications"]
CONNECTS = ["40/live-updates," + dumps({"token": ALICE}), "40" + dumps({"token": ALICE}),
            '40/live-updates,{"token":"garbage"}', "40/nope,",
            "40/notifications," + dumps({"token": make_token("alice", ttl=-3600)}),
            "40/live-updates," + dumps({"token": ALICE, "pid": "p", "offset": 5})]
CONTROL = ["3", "3", "3", "6", "5", "5x", "2", "1", "", "9x", "x", "4", "42"]


class SessionGarbage(Garbage):
    """Frames for a connected session: mostly Socket.IO on ``/chat``, some of it valid, binary
    headers followed by (about) the attachments they announce, a few state violations."""

    def packet_on_chat(self) -> str:
        r = self.r
        roll = r.random()
        kind = ("2" if roll < 0.6 else "5" if roll < 0.72 else "3" if roll < 0.77
                else "0" if roll < 0.79 else "1" if roll < 0.8 else self.pick(
                    ["4", "6", "7", "9", "", "x", "\u0662"]))
        parts = [kind]
        if r.random() < (0.9 if kind in "56" else 0.03):
            parts.append(self.pick(["0-", "1-", "1-", "2-", "3-", "11-", "-", "x-"]))
        if r.random() < 0.99:
            nsp = self.pick(SESSION_NSPS)
            parts.append(nsp + "," if r.random() < 0.99 else nsp)
        if r.random() < 0.7:
            parts.append(self.ack_id())
        if r.random() < 0.95:
            parts.append(self.json_fragment())
        return "4" + "".join(parts)

    def valid(self) -> str:
        ack = self.r.randrange(10**6)
        room = self.pick(["room:a", "room:general", "room:b"])
        return "4" + self.pick([
            f'2/chat,{ack}["room:join",{{"room":"{room}"}}]',
            f'2/chat,{ack}["room:leave",{{"room":"{room}"}}]',
            f'2/chat,{ack}["message:send",{{"room":"{room}","text":"hi\\u202e\\u0007","id":"m{ack}"}}]',
            f'2/chat,["message:send",{{"room":"{room}","text":"x","id":"m"}}]',
            f'2/chat,{ack}["typing:start",{{"room":"{room}"}}]',
            f'2/chat,{ack}["room:history",{{"room":"{room}","since":1}}]',
            f'2/chat,{ack}["room:presence",{{"room":"{room}"}}]',
            f'51-/chat,{ack}["message:send",{{"room":"{room}","text":"","id":"b{ack}",'
            f'"attachment":{{"_placeholder":true,"num":0}}}}]',
        ])

    def frames(self, count: int) -> list[tuple[float, str | bytes | None]]:
        """``(dt, frame)`` steps; a ``None`` frame is a timer tick."""
        r = self.r
        steps: list[tuple[float, str | bytes | None]] = []
        while len(steps) < count:
            dt = self.pick([0.0, 0.0, 0.0, 0.001, 0.01, 0.1, 0.5, 1.0, 3.0, 12.0])
            roll = r.random()
            frame: str | bytes | None
            if roll < 0.62:
                frame = self.packet_on_chat()
            elif roll < 0.77:
                frame = self.valid()
            elif roll < 0.8:
                frame = "4" + self.socketio_text()
            elif roll < 0.87:
                frame = None
            elif roll < 0.93:
                frame = self.pick(CONTROL) if r.random() < 0.1 else "3"
            elif roll < 0.96:
                frame = self.pick(CONNECTS) if r.random() < 0.6 else "41/live-updates,"
            elif roll < 0.965:
                frame = r.randbytes(r.randrange(12))
            elif roll < 0.97:
                frame = "b" + self.pick(["AAEC", "====", "YQ", self.text(4)])
            else:
                frame = "41/chat," if r.random() < 0.03 else "4" + self.soup()
            steps.append((dt, frame))
        return steps


def drive(run: Run, steps: list[tuple[float, str | bytes | None]],
          rnd: random.Random) -> None:
    """Feed the steps; after a binary header the client usually sends its attachments
    (sometimes one too few, so the next text frame finds them pending)."""
    for dt, frame in steps:
        if run.closed:
            return
        if frame is None:
            run.tick(dt)
            continue
        run.now += dt
        run.feed(frame)
        if run.session._assembler.pending and rnd.random() < 0.9:
            short = rnd.random() < 0.05
            for _ in range(MAX_ATTACHMENTS):
                if run.closed or not run.session._assembler.pending:
                    break
                run.feed(rnd.randbytes(rnd.randrange(16)))
                if short:
                    break


FRAMES_PER_RUN = 60
JOIN_AFTER = 20


def fuzz_runs(rnd: random.Random, limits: Limits, runs: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    for _ in range(runs):
        run = Run.connected(limits)
        drive(run, SessionGarbage(rnd).frames(FRAMES_PER_RUN), rnd)
        COUNTS["session"] += run.fed
        seen["frames"] += run.fed
        seen.update(run.codes)
    return seen


TOTALS: Counter[str] = Counter()


@fuzz(200)
@given(SEEDS)
def _garbage_default_limits(rnd: random.Random) -> None:
    TOTALS.update(fuzz_runs(rnd, Limits(), 5))


@fuzz(120)
@given(SEEDS)
def _garbage_tight_limits(rnd: random.Random) -> None:
    TOTALS.update(fuzz_runs(rnd, TIGHT, 5))


@fuzz(250)
@given(SEEDS)
def _join_after_garbage(rnd: random.Random) -> None:
    for _ in range(6):
        run = Run.connected(HIGH)
        drive(run, SessionGarbage(rnd).frames(JOIN_AFTER), rnd)
        COUNTS["session"] += run.fed
        TOTALS["frames"] += run.fed
        if run.closed:
            TOTALS["closed before the join"] += 1
            continue
        actions = run.feed('42/chat,424242["room:join",{"room":"room:after-garbage"}]')
        COUNTS["session"] += 1
        TOTALS["frames"] += 1
        if "/chat" not in run.session.sockets or run.closed:
            assert run.closed, actions  # a disconnected namespace or pending binary closes
            TOTALS["join closed (disconnected or binary pending)"] += 1
            continue
        joins = [a for a in actions if isinstance(a, Join)]
        acks = [a for a in actions if isinstance(a, SendText) and a.text.startswith(
            "43/chat,424242[")]
        if joins:
            assert len(joins) == 1 and not acks and joins[0].room == "room:after-garbage"
            TOTALS["join ok"] += 1
        else:
            (ack,) = acks
            error = json.loads(ack.text[len("43/chat,424242"):])[0]["error"]
            assert error["code"] == "rate_limited", ack.text
            TOTALS["join rate_limited"] += 1


@fuzz(400)
@given(st.lists(st.one_of(PACKET_TEXT.map(lambda t: "4" + t),
                          PACKET_TEXT.map(lambda t: "42/chat," + t[1:]),
                          st.binary(max_size=8), st.just("3")), min_size=8, max_size=8))
def _strategy_frames(frames: list[str | bytes]) -> None:
    run = Run.connected()
    for frame in frames:
        if run.closed:
            break
        run.now += 0.05
        run.feed(frame)
    COUNTS["session"] += run.fed
    TOTALS["frames"] += run.fed


def counted(prop: Callable[[], None], at_least: int) -> None:
    TOTALS.clear()
    before = COUNTS["session"]
    prop()
    fed = COUNTS["session"] - before
    print(f"session frames: {fed}; {dict(TOTALS)}")
    assert fed >= at_least, f"only {fed} frames"


def test_session_survives_garbage_with_default_limits() -> None:
    counted(_garbage_default_limits, 20_000)
    assert TOTALS["answered"] > 6_000 and TOTALS["malformed answered"] > 5_000


def test_session_survives_garbage_with_tight_limits_and_abuse_disconnects() -> None:
    counted(_garbage_tight_limits, 12_000)
    assert TOTALS["abuse disconnects"] > 20


def test_room_join_after_garbage_still_answered() -> None:
    counted(_join_after_garbage, 15_000)
    assert TOTALS["join ok"] > 500


def test_session_survives_strategy_drawn_frames() -> None:
    counted(_strategy_frames, 1_500)


# --- a crash found by fuzzing: operator events with nested payloads -------------------------

LAX_EVENTS = Path(__file__).with_name("events")


@pytest.mark.parametrize("levels", [260, 1000])
def test_deeply_nested_operator_event_is_answered_not_raised(levels: int) -> None:
    run = Run.connected(table=namespaces.build(LAX_EVENTS))
    run.session.sockets["/chat"].rooms.add("room:a")
    actions = run.feed('42/chat,9["note:add",{"room":"room:a","x":' + "[" * levels
                       + "]" * levels + "}]")
    assert answered(actions) == [("/chat", 9)]
