"""The session core driven by plain calls: frames and ``now`` in, actions out.

Frames are written as they travel (Engine.IO digit included), so each test reads like a wire
trace; ``reply`` and ``pushed`` decode what the core answered, like phoenix's
``assert_reply`` / ``assert_push``.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from gateway.actions import (
    AckTo,
    Action,
    Announce,
    Close,
    Closed,
    Failed,
    History,
    Join,
    JoinFailure,
    Leave,
    NamespaceSocket,
    Observed,
    Opened,
    PresenceQuery,
    Publish,
    Recovered,
    Restore,
    SendText,
    TypingChange,
)
from gateway.limits import Limits
from gateway.namespaces import NAMESPACES
from gateway.session import Session, SessionConfig
from shared import envelope
from shared.jwtauth import Identity, TokenVerifier
from shared.protocol.errors import CloseCode
from shared.room_log import PublishResult
from shared.room_log.paging import Page
from tests.support.tokens import SECRET, make_token

VERIFIER = TokenVerifier(("HS256",), secret=SECRET)
ALICE = make_token("alice")
ROOM = "room:general"
WALL_CLOCK = 1_764_662_400.5  # unix seconds, for the ``ts`` of messages


def identity(sub: str = "alice", **claims: Any) -> Identity:
    verified = VERIFIER.verify(make_token(sub, **claims))
    assert verified is not None
    return verified


@dataclass
class Client:
    """One connection's session, a clock, and the sockets it opened."""

    session: Session
    now: float = 0.0
    sockets: dict[str, NamespaceSocket] = field(default_factory=dict)

    def send(self, frame: str | bytes) -> list[Action]:
        actions = self.session.receive(frame, self.now)
        for action in list(actions):
            if isinstance(action, Opened):
                self.sockets[action.socket.nsp] = action.socket
                # the shell reports back once the user is admitted and the session saved
                actions.extend(self.session.opened(action.socket))
        return actions

    def connect(self, nsp: str = "/chat", token: str | None = ALICE) -> list[Action]:
        auth = "" if token is None else json.dumps({"token": token}, separators=(",", ":"))
        prefix = "40" if nsp == "/" else f"40{nsp},"
        return self.send(prefix + auth)

    def emit(self, nsp: str, ack: int | None, event: str, *args: Any) -> list[Action]:
        body = json.dumps([event, *args], separators=(",", ":"), ensure_ascii=False)
        head = "42" if nsp == "/" else f"42{nsp},"
        return self.send(head + ("" if ack is None else str(ack)) + body)

    def joined(self, room: str, nsp: str = "/chat") -> None:
        """What the shell reports once a Join is carried out."""
        self.session.joined(Join(self.sockets[nsp], room, AckTo(nsp, None)))

    def timer(self, now: float) -> list[Action]:
        self.now = now
        return self.session.on_timer(now)


def client(
    upgrade: Identity | None = None, config: SessionConfig | None = None, now: float = 0.0
) -> Client:
    ids = (f"sid-{n}" for n in itertools.count(1))
    session = Session("eio-1", upgrade, config or SessionConfig(), NAMESPACES, VERIFIER,
                      lambda: next(ids), now, wall_clock=lambda: WALL_CLOCK)
    return Client(session, now)


def connected(nsp: str = "/chat", **kwargs: Any) -> Client:
    c = client(**kwargs)
    c.connect(nsp)
    assert nsp in c.sockets
    return c


def texts(actions: list[Action]) -> list[str]:
    return [action.text for action in actions if isinstance(action, SendText)]


def only(actions: list[Action], kind: type[Any]) -> Any:
    found = [action for action in actions if isinstance(action, kind)]
    assert len(found) == 1, actions
    return found[0]


def reply(actions: list[Action], nsp: str, ack: int) -> Any:
    """The single ack frame for ``ack`` on ``nsp``, decoded to its one argument."""
    head = ("43" if nsp == "/" else f"43{nsp},") + str(ack)
    frames = [text for text in texts(actions) if text.startswith(head + "[")]
    assert len(frames) == 1, actions
    body = json.loads(frames[0][len(head):])
    assert len(body) == 1
    return body[0]


def error_code(actions: list[Action], nsp: str, ack: int) -> str:
    answer = reply(actions, nsp, ack)
    assert answer["ok"] is False
    return str(answer["error"]["code"])


def pushed(actions: list[Action], nsp: str) -> list[Any]:
    """Event frames sent to the client on ``nsp``, decoded to their argument arrays."""
    head = "42" if nsp == "/" else f"42{nsp},"
    return [json.loads(text[len(head):]) for text in texts(actions)
            if text.startswith(head + "[")]


# --- Engine.IO open, CONNECT ---------------------------------------------------------------


def test_open_packet() -> None:
    assert client().session.open() == [SendText(
        '0{"sid":"eio-1","upgrades":[],"pingInterval":25000,"pingTimeout":5000,'
        '"maxPayload":1000000}'
    )]


def test_connect_with_a_good_token() -> None:
    c = client()

    actions = c.connect("/chat", ALICE)

    assert texts(actions) == ['40/chat,{"sid":"sid-1","pid":"sid-2"}']
    opened = only(actions, Opened)
    assert opened.socket.nsp == "/chat" and opened.socket.sid == "sid-1"
    assert opened.socket.identity.sub == "alice"
    assert opened.socket.rooms == {"user:alice"}


def test_connect_with_a_bad_token() -> None:
    for token in ["garbage", make_token("alice", ttl=-3600), make_token("a", secret="x" * 32)]:
        actions = client().connect("/chat", token)

        assert texts(actions) == [
            '44/chat,{"message":"unauthorized","data":{"code":"unauthorized"}}'
        ]
        assert Observed("/chat", "connect", "unauthorized") in actions


def test_connect_without_any_identity_is_unauthorized() -> None:
    actions = client().connect("/chat", None)

    assert texts(actions) == ['44/chat,{"message":"unauthorized","data":{"code":"unauthorized"}}']


def test_token_on_the_upgrade_is_enough() -> None:
    c = client(upgrade=identity("bob"))

    actions = c.send("40/chat,")

    assert texts(actions) == ['40/chat,{"sid":"sid-1","pid":"sid-2"}']
    assert only(actions, Opened).socket.identity.sub == "bob"
    assert texts(c.send("40/notifications,{}")) == [
        '40/notifications,{"sid":"sid-3","pid":"sid-4"}']


def test_connect_token_wins_over_the_upgrade_identity() -> None:
    c = client(upgrade=identity("bob"))

    assert only(c.connect("/chat", ALICE), Opened).socket.identity.sub == "alice"
    assert texts(c.connect("/live-updates", "garbage")) == [
        '44/live-updates,{"message":"unauthorized","data":{"code":"unauthorized"}}'
    ]


def test_unknown_namespace() -> None:
    assert client().send("40/nope,") == [SendText('44/nope,{"message":"Invalid namespace"}')]
    assert client().send("40/nope") == [SendText('44/nope,{"message":"Invalid namespace"}')]


def test_root_namespace_connects() -> None:
    c = client()

    assert texts(c.connect("/", ALICE)) == ['40{"sid":"sid-1"}']
    assert texts(client(upgrade=identity()).send("40")) == ['40{"sid":"sid-1"}']


def test_every_namespace_gets_its_own_sid() -> None:
    c = client()

    sids = [only(c.connect(nsp), Opened).socket.sid
            for nsp in ["/", "/chat", "/notifications", "/live-updates"]]

    assert sids == ["sid-1", "sid-2", "sid-4", "sid-6"]  # durable ones also draw a pid
    assert set(c.session.sockets) == {"/", "/chat", "/notifications", "/live-updates"}


def test_refused_connect_can_be_retried() -> None:
    c = client()
    c.connect("/chat", "garbage")

    assert texts(c.connect("/chat", ALICE)) == ['40/chat,{"sid":"sid-1","pid":"sid-2"}']


# --- state violations close the connection -------------------------------------------------


def test_event_before_connect_closes() -> None:
    actions = client().emit("/chat", 1, "room:join", {"room": ROOM})

    assert only(actions, Close).code == CloseCode.POLICY


def test_event_on_another_namespace_than_the_connected_one_closes() -> None:
    c = connected("/chat")

    assert only(c.emit("/live-updates", 1, "room:join", {"room": ROOM}), Close).code == (
        CloseCode.POLICY
    )


def test_second_connect_on_the_same_namespace_closes() -> None:
    c = connected("/chat")

    assert only(c.connect("/chat"), Close).code == CloseCode.POLICY


def test_client_ping_closes() -> None:
    assert only(connected().send("2"), Close).code == CloseCode.POLICY


def test_engineio_close_packet_closes_normally() -> None:
    assert only(connected().send("1"), Close).code == 1000


def test_noop_and_upgrade_are_ignored() -> None:
    c = connected()

    assert c.send("6") == [] and c.send("5") == []


def test_unparseable_engineio_frame_closes() -> None:
    assert only(connected().send("9x"), Close).code == CloseCode.PROTOCOL
    assert only(connected().send(""), Close).code == CloseCode.PROTOCOL


def test_binary_frame_with_nothing_pending_closes() -> None:
    assert only(connected().send(b"\x01\x02"), Close).code == CloseCode.PROTOCOL


def test_binary_packet_before_connect_closes() -> None:
    actions = client().send('451-/chat,1["message:send",{"_placeholder":true,"num":0}]')

    assert only(actions, Close).code == CloseCode.POLICY


def test_text_frame_while_attachments_are_pending_closes() -> None:
    c = connected()
    c.joined(ROOM)
    assert c.send('451-/chat,1["message:send",{"room":"room:general","text":"x","id":"m",'
                  '"attachment":{"_placeholder":true,"num":0}}]') == []

    assert only(c.emit("/chat", 2, "room:join", {"room": ROOM}), Close).code == CloseCode.PROTOCOL


# --- room:join / room:leave ----------------------------------------------------------------


def test_join_a_valid_room() -> None:
    c = connected()

    actions = c.emit("/chat", 1, "room:join", {"room": ROOM})

    join = only(actions, Join)
    assert join.socket is c.sockets["/chat"]
    assert join.room == ROOM
    assert (join.reply.nsp, join.reply.id) == ("/chat", 1)
    assert Observed("/chat", "room:join") in actions
    assert texts(actions) == []  # the shell acks once the room is really subscribed


@pytest.mark.parametrize(
    "room", ["x.>", "*", ">", "a b", "a.b", "r" * 129, "", "room:\u00e9", 42, None, ["room:a"]],
    ids=["x.>", "*", ">", "space", "dot", "129 chars", "empty", "non-ASCII", "int", "null",
         "list"],
)
def test_join_a_bad_room_name_is_bad_request(room: object) -> None:
    actions = connected().emit("/chat", 3, "room:join", {"room": room})

    assert error_code(actions, "/chat", 3) == "bad_request"
    assert not any(isinstance(action, Join) for action in actions)


def test_join_someone_elses_user_room_is_forbidden() -> None:
    assert error_code(connected().emit("/chat", 1, "room:join", {"room": "user:someone-else"}),
                      "/chat", 1) == "forbidden"


def test_join_own_user_room_is_allowed() -> None:
    actions = connected().emit("/chat", 1, "room:join", {"room": "user:alice"})

    assert reply(actions, "/chat", 1) == {"ok": True, "room": "user:alice"}  # joined already
    assert not any(isinstance(action, Join) for action in actions)


def test_rooms_claim_limits_joins() -> None:
    c = client()
    c.connect("/chat", make_token("alice", rooms=["room:team-*"]))

    assert only(c.emit("/chat", 1, "room:join", {"room": "room:team-a"}), Join).room == (
        "room:team-a"
    )
    assert error_code(c.emit("/chat", 2, "room:join", {"room": ROOM}), "/chat", 2) == "forbidden"
    assert reply(c.emit("/chat", 3, "room:join", {"room": "user:alice"}), "/chat", 3)["ok"]


def test_default_patterns_allow_only_room_prefixed_names() -> None:
    actions = connected().emit("/chat", 1, "room:join", {"room": "a@b-c_d:1"})

    assert error_code(actions, "/chat", 1) == "forbidden"


def test_room_count_limit() -> None:
    c = connected(config=SessionConfig(limits=Limits(max_rooms=2)))
    c.joined("room:a")  # with user:alice, that is two

    assert error_code(c.emit("/chat", 1, "room:join", {"room": "room:b"}), "/chat", 1) == (
        "forbidden"
    )
    assert reply(c.emit("/chat", 2, "room:join", {"room": "room:a"}), "/chat", 2) == {
        "ok": True, "room": "room:a"}  # already in


def test_leave() -> None:
    c = connected()
    c.joined(ROOM)

    leave = only(c.emit("/chat", 4, "room:leave", {"room": ROOM}), Leave)
    assert (leave.room, leave.reply.id) == (ROOM, 4)
    assert error_code(c.emit("/chat", 5, "room:leave", {"room": "user:alice"}), "/chat", 5) == (
        "forbidden"
    )


# --- message:send --------------------------------------------------------------------------


def test_send_before_joining_is_forbidden() -> None:
    actions = connected().emit("/chat", 1, "message:send", {"room": ROOM, "text": "hi", "id": "m1"})

    assert error_code(actions, "/chat", 1) == "forbidden"
    assert not any(isinstance(action, Publish) for action in actions)


def test_send_after_joining_publishes_the_sanitised_message() -> None:
    c = connected()
    c.joined(ROOM)

    actions = c.emit("/chat", 7, "message:send",
                     {"room": ROOM, "text": "Cafe\u0301\u202e \x07ok\n", "id": "m-1"})

    publish = only(actions, Publish)
    assert publish.socket is c.sockets["/chat"]
    assert (publish.room, publish.message_id, publish.attachments) == (ROOM, "m-1", ())
    assert (publish.reply.nsp, publish.reply.id) == ("/chat", 7)
    args = json.loads(publish.args)
    assert args[0] == "message:received"
    message = args[1]
    assert list(message) == ["room", "id", "from", "text", "ts"]
    assert message == {"room": ROOM, "id": "m-1", "from": "alice", "text": "Caf\u00e9 ok\n",
                       "ts": message["ts"]}
    assert message["ts"] == int(WALL_CLOCK * 1000)  # from the injected wall clock
    assert publish.args == json.dumps(args, separators=(",", ":"), ensure_ascii=False).encode()
    assert texts(actions) == []  # acked once the broker's answer is fed back (published)


def test_text_of_4096_code_points_fits_and_size_rules_are_too_large() -> None:
    c = connected()
    c.joined(ROOM)
    emoji = "\U0001f600"  # one code point, two UTF-16 units, four UTF-8 bytes

    fits = c.emit("/chat", 1, "message:send", {"room": ROOM, "text": emoji * 4096, "id": "a"})
    over = c.emit("/chat", 2, "message:send", {"room": ROOM, "text": "x" * 4097, "id": "b"})

    assert only(fits, Publish)
    assert error_code(over, "/chat", 2) == "too_large"
    long_id = {"room": ROOM, "text": "x", "id": "i" * 65}
    assert error_code(c.emit("/chat", 3, "message:send", long_id), "/chat", 3) == "too_large"


@pytest.mark.parametrize(
    "payload",
    [
        {"room": ROOM, "text": 5, "id": "m"},
        {"room": ROOM, "text": "hi", "id": 5},
        {"room": ROOM, "text": "hi", "id": ""},
        {"room": ROOM, "text": "hi"},
        {"room": ROOM, "id": "m"},
        {"text": "hi", "id": "m"},
        {"room": ROOM, "text": "hi", "id": "m", "extra": True},
        {"room": ROOM, "text": "hi", "id": "m", "attachment": "not bytes"},
        {"room": ROOM, "text": "  \u202e\x00 ", "id": "m"},
        "just a string",
        ["a", "list"],
        None,
    ],
    ids=[
        "text int", "id int", "id empty", "no id", "no text", "no room",
        "extra field", "attachment not binary", "text empty after sanitising", "string",
        "list", "null",
    ],
)
def test_send_with_wrong_types_is_bad_request(payload: object) -> None:
    c = connected()
    c.joined(ROOM)

    assert error_code(c.emit("/chat", 9, "message:send", payload), "/chat", 9) == "bad_request"


def test_send_with_no_payload_or_two_payloads_is_bad_request() -> None:
    c = connected()
    c.joined(ROOM)
    payload = {"room": ROOM, "text": "hi", "id": "m"}

    assert error_code(c.emit("/chat", 1, "message:send"), "/chat", 1) == "bad_request"
    assert error_code(c.emit("/chat", 2, "message:send", payload, payload), "/chat", 2) == (
        "bad_request"
    )


def test_binary_send_publishes_the_attachment() -> None:
    c = connected()
    c.joined(ROOM)
    image = b"\x89PNG\r\n\x1a\n" + bytes(range(256))

    header = c.send('451-/chat,5["message:send",{"room":"room:general","text":"look",'
                    '"id":"m2","attachment":{"_placeholder":true,"num":0}}]')
    actions = c.send(image)

    assert header == []
    publish = only(actions, Publish)
    assert publish.attachments == (image,)
    assert (publish.message_id, publish.reply.id) == ("m2", 5)
    message = json.loads(publish.args)[1]
    assert message["attachment"] == {"_placeholder": True, "num": 0}
    assert message["text"] == "look"


def test_binary_send_with_only_an_attachment_is_allowed() -> None:
    c = connected()
    c.joined(ROOM)
    c.send('451-/chat,5["message:send",{"room":"room:general","text":"",'
           '"id":"m3","attachment":{"_placeholder":true,"num":0}}]')

    assert only(c.send(b"\x00"), Publish).attachments == (b"\x00",)


def test_attachment_over_the_limit_is_too_large() -> None:
    c = connected()
    c.joined(ROOM)
    limit = Limits().attachment_max_bytes
    header = ('451-/chat,6["message:send",{"room":"room:general","text":"big",'
              '"id":"m4","attachment":{"_placeholder":true,"num":0}}]')

    c.send(header)
    at_limit = c.send(b"\x00" * limit)
    c.send(header.replace("6[", "8["))
    over = c.send(b"\x00" * (limit + 1))

    assert only(at_limit, Publish)
    assert error_code(over, "/chat", 8) == "too_large"


def test_attachment_placeholder_out_of_range_is_a_bad_request_and_the_socket_lives() -> None:
    c = connected()
    c.joined(ROOM)
    c.send('451-/chat,5["message:send",{"room":"room:general","text":"x",'
           '"id":"m","attachment":{"_placeholder":true,"num":3}}]')

    assert error_code(c.send(b"\x00"), "/chat", 5) == "bad_request"
    assert only(c.emit("/chat", 6, "message:send", {"room": ROOM, "text": "y", "id": "n"}),
                Publish)


def test_typing_goes_to_the_shell_once_joined_and_repeats_are_coalesced() -> None:
    c = connected()

    assert error_code(c.emit("/chat", 1, "typing:start", {"room": ROOM}), "/chat", 1) == (
        "forbidden"
    )
    c.joined(ROOM)
    change = only(c.emit("/chat", 2, "typing:start", {"room": ROOM}), TypingChange)
    assert (change.room, change.active, change.reply.id) == (ROOM, True, 2)
    repeat = c.emit("/chat", 3, "typing:start", {"room": ROOM})
    assert not [a for a in repeat if isinstance(a, TypingChange)]
    assert reply(repeat, "/chat", 3) == {"ok": True}
    stop = only(c.emit("/chat", 4, "typing:stop", {"room": ROOM}), TypingChange)
    assert (stop.room, stop.active) == (ROOM, False)


# --- other events --------------------------------------------------------------------------


def test_unknown_event() -> None:
    c = connected()

    assert error_code(c.emit("/chat", 1, "chat:nuke", {}), "/chat", 1) == "unknown_event"
    assert error_code(c.send('42/chat,2[7,{"room":"room:a"}]'), "/chat", 2) == "unknown_event"


@pytest.mark.parametrize("nsp", ["/", "/notifications"])
def test_namespaces_without_client_events(nsp: str) -> None:
    c = connected(nsp)

    assert error_code(c.emit(nsp, 1, "room:join", {"room": ROOM}), nsp, 1) == "unknown_event"


def test_live_updates_joins_but_does_not_chat() -> None:
    c = connected("/live-updates")

    assert only(c.emit("/live-updates", 1, "room:join", {"room": ROOM}), Join)
    c.joined(ROOM, "/live-updates")
    actions = c.emit("/live-updates", 2, "message:send", {"room": ROOM, "text": "x", "id": "m"})
    assert error_code(actions, "/live-updates", 2) == "unknown_event"


def test_room_presence_asks_the_shell_for_a_room_the_socket_may_see() -> None:
    c = connected()
    c.joined(ROOM)

    query = only(c.emit("/chat", 1, "room:presence", {"room": ROOM}), PresenceQuery)
    assert (query.room, query.reply.id) == (ROOM, 1)
    assert error_code(c.emit("/chat", 2, "room:presence", {"room": "user:bob"}), "/chat",
                      2) == "forbidden"


def test_history_asks_the_shell_to_read_the_log() -> None:
    c = connected()
    c.joined(ROOM)

    history = only(c.emit("/chat", 1, "room:history", {"room": ROOM, "since": 4, "limit": 7}),
                   History)
    assert (history.room, history.since, history.before, history.limit) == (ROOM, 4, None, 7)
    assert error_code(c.emit("/chat", 2, "room:history", {"room": ROOM, "since": 1,
                                                          "before": 9}), "/chat", 2) == (
        "bad_request")


def test_recovery_request_and_opt_out() -> None:
    c = client()
    auth = json.dumps({"token": ALICE, "pid": "old-pid", "offset": "17"})
    opened = only(c.send("40/chat," + auth), Opened)
    assert opened.restore == Restore("old-pid", "17")
    assert opened.socket.pid is not None

    c2 = client()
    opted_out = only(c2.send("40/chat," + json.dumps({"token": ALICE, "recovery": False})),
                     Opened)
    assert opted_out.restore is None and opted_out.socket.pid is None
    assert texts(c2.send("40/live-updates," + json.dumps({"token": ALICE})))[0] == (
        '40/live-updates,{"sid":"sid-2"}')


def test_failure_without_ack_id_is_a_request_error_event() -> None:
    c = connected()

    actions = c.emit("/chat", None, "room:join", {"room": "x.>"})

    [frame] = texts(actions)
    assert frame.startswith('42/chat,["request:error",{"code":"bad_request","message":')
    [[name, body]] = pushed(actions, "/chat")
    assert name == "request:error"
    assert list(body) == ["code", "message", "event"]
    assert body["event"] == "room:join" and body["message"]
    assert Observed("/chat", "room:join", "bad_request") in actions


def test_unknown_event_without_ack_id_is_a_request_error_event() -> None:
    [[name, body]] = pushed(connected().emit("/chat", None, "nope"), "/chat")

    assert (name, body["code"], body["event"]) == ("request:error", "unknown_event", "nope")


@pytest.mark.parametrize(
    "frame",
    [
        '42/chat,{"not":"an array"}',
        "42/chat,[]",
        '42/chat,["connect"]',
        '42/chat,["disconnect",{}]',
        '42/chat,["x"',
        "42/chat,[null]",
        '43/chat,["no id"]',
        '44/chat,{"message":"from a client"}',
        '4511-/chat,["x"]',
        '42/chat,' + "9" * 40 + '["x"]',
    ],
)
def test_malformed_packet_on_a_connected_namespace_is_a_request_error(frame: str) -> None:
    c = connected()

    actions = c.send(frame)

    [[name, body]] = pushed(actions, "/chat")
    assert name == "request:error"
    assert body["code"] == "bad_request" and "event" not in body
    assert not any(isinstance(action, Close) for action in actions)
    assert only(c.emit("/chat", 1, "room:join", {"room": ROOM}), Join)  # still working


@pytest.mark.parametrize(
    "frame", ["42/chat,5[]", '42/chat,5["connect"]', "42/chat,5[null]", '42/chat,5{"a":1}']
)
def test_malformed_event_with_an_ack_id_gets_an_error_ack(frame: str) -> None:
    assert error_code(connected().send(frame), "/chat", 5) == "bad_request"


def test_malformed_packet_before_any_connect_gets_no_answer() -> None:
    assert client().send("42/chat,{}") == []


# --- rate limits ---------------------------------------------------------------------------


def test_twenty_first_request_in_the_same_instant_is_rate_limited() -> None:
    c = connected(config=SessionConfig(limits=Limits(request_rate=10, request_burst=20)))
    c.now = 1.0

    joins = [c.emit("/chat", n, "room:join", {"room": f"room:r{n}"}) for n in range(1, 21)]
    refused = c.emit("/chat", 21, "room:join", {"room": "room:r21"})

    assert all(any(isinstance(action, Join) for action in actions) for actions in joins)
    answer = reply(refused, "/chat", 21)
    assert answer["error"]["code"] == "rate_limited"
    assert answer["error"]["retry_after_ms"] > 0
    assert answer["error"]["retry_after_ms"] == 100  # one request token at 10/s


def test_rate_limit_refills_with_time() -> None:
    c = connected(config=SessionConfig(limits=Limits(request_rate=4, request_burst=1)))

    assert only(c.emit("/chat", 1, "room:join", {"room": ROOM}), Join)
    assert error_code(c.emit("/chat", 2, "room:join", {"room": ROOM}), "/chat", 2) == (
        "rate_limited"
    )
    c.now = 0.25
    assert only(c.emit("/chat", 3, "room:join", {"room": ROOM}), Join)


def test_unknown_events_use_the_request_budget_and_chat_has_its_own() -> None:
    c = connected(config=SessionConfig(limits=Limits(request_burst=2, chat_burst=1)))
    c.joined(ROOM)

    c.emit("/chat", 1, "probe:a")
    c.emit("/chat", 2, "probe:b")
    assert error_code(c.emit("/chat", 3, "room:join", {"room": ROOM}), "/chat", 3) == (
        "rate_limited"
    )
    message = {"room": ROOM, "text": "hi", "id": "m"}
    assert only(c.emit("/chat", 4, "message:send", message), Publish)
    assert error_code(c.emit("/chat", 5, "message:send", message), "/chat", 5) == "rate_limited"


# --- heartbeat and connect timeout ---------------------------------------------------------


def test_ping_at_the_ping_interval() -> None:
    c = connected()

    assert c.session.next_deadline() == 25.0
    assert c.timer(24.9) == []
    assert c.timer(25.0) == [SendText("2")]


def test_two_unanswered_pings_close_4000() -> None:
    c = connected()

    assert c.timer(25.0) == [SendText("2")]
    assert c.timer(30.0) == []  # first miss
    assert c.timer(50.0) == [SendText("2")]
    assert c.timer(55.0) == [Close(4000, "ping timeout")]


def test_pong_resets_the_misses() -> None:
    c = connected()
    c.timer(25.0)
    c.timer(30.0)  # first miss
    c.timer(50.0)

    assert c.send("3") == []
    assert c.timer(55.0) == []
    assert c.timer(75.0) == [SendText("2")]


def test_traffic_other_than_pong_does_not_count_as_liveness() -> None:
    c = connected()
    c.timer(25.0)
    c.timer(30.0)
    c.timer(50.0)
    c.now = 52.0
    c.emit("/chat", 1, "room:join", {"room": ROOM})

    assert only(c.timer(55.0), Close).code == CloseCode.PING_TIMEOUT


def test_no_connect_within_the_connect_timeout_closes_4001() -> None:
    c = client()

    assert c.session.next_deadline() == 25.0  # the first ping comes first
    assert c.timer(45.0) == [Close(4001, "no namespace CONNECT in time")]


def test_connect_timeout_is_the_next_deadline_when_it_comes_first() -> None:
    c = client(config=SessionConfig(connect_timeout_ms=1000))

    assert c.session.next_deadline() == 1.0
    assert only(c.timer(1.0), Close).code == CloseCode.CONNECT_TIMEOUT


def test_a_connect_cancels_the_connect_timeout() -> None:
    c = client()
    c.now = 44.0
    c.connect()

    assert c.timer(45.0) == [SendText("2")]


def test_a_refused_connect_does_not_cancel_the_connect_timeout() -> None:
    c = client()
    c.connect("/chat", "garbage")

    assert only(c.timer(45.0), Close).code == CloseCode.CONNECT_TIMEOUT


# --- disconnect ----------------------------------------------------------------------------


def test_client_disconnect_ends_that_namespace_only() -> None:
    c = connected("/chat")
    c.connect("/live-updates")
    c.joined(ROOM)
    socket = c.sockets["/chat"]

    actions = c.send("41/chat,")

    assert actions == [Closed(socket, frozenset({"user:alice", ROOM}), final=True)]
    assert set(c.session.sockets) == {"/live-updates"}
    assert only(c.emit("/chat", 1, "room:join", {"room": ROOM}), Close).code == CloseCode.POLICY


def test_namespace_can_be_connected_again_after_disconnect() -> None:
    c = connected("/chat")
    c.send("41/chat,")

    assert texts(c.connect("/chat")) == ['40/chat,{"sid":"sid-3","pid":"sid-4"}']


def test_disconnect_of_a_namespace_not_connected_is_ignored() -> None:
    assert connected("/chat").send("41/live-updates,") == []


def test_transport_closed_ends_every_namespace() -> None:
    c = connected("/")
    c.connect("/chat")
    c.joined(ROOM)

    actions = c.session.transport_closed()

    assert sorted((a.socket.nsp, sorted(a.rooms)) for a in actions if isinstance(a, Closed)) == [
        ("/", ["user:alice"]),
        ("/chat", [ROOM, "user:alice"]),
    ]
    assert len(actions) == 2
    assert all(not a.socket.rooms for a in actions if isinstance(a, Closed))  # the core's own
    assert c.session.sockets == {}
    assert c.send('42/chat,["x"]') == [] and c.timer(1000.0) == []


def test_deeply_nested_binary_packet_does_not_raise() -> None:
    c = connected()
    depth = 1000

    actions = c.send('451-/chat,1["message:send",' + "[" * depth + "]" * depth
                     + ',{"_placeholder":true,"num":0}]')
    actions += c.send(b"\x00")

    assert any(isinstance(action, SendText | Close) for action in actions)


def test_abuse_ends_every_namespace_for_good() -> None:
    c = connected(config=SessionConfig(limits=Limits(request_rate=1, request_burst=1)))
    c.connect("/live-updates")
    actions: list[Action] = []
    for n in range(1, 13):  # 10x a 1/s limit rejected within 10 s is abuse; the 12th tips it
        actions = c.emit("/chat", n, "room:join", {"room": ROOM})
    assert '41/chat,' in texts(actions) and '41/live-updates,' in texts(actions)
    closed = [a for a in actions if isinstance(a, Closed)]
    assert {a.socket.nsp for a in closed} == {"/chat", "/live-updates"}
    assert all(a.final for a in closed)
    assert only(actions, Close).code == CloseCode.POLICY
    assert c.session.sockets == {}


def test_rejections_spread_over_more_than_the_window_are_not_abuse() -> None:
    c = connected(config=SessionConfig(limits=Limits(request_rate=1, request_burst=1)))
    for n in range(1, 40):
        c.now = n * 0.9  # one rejection-or-success every 0.9 s: never 10 in 10 s
        actions = c.emit("/chat", n, "room:join", {"room": ROOM})
        assert not any(isinstance(a, Close) for a in actions)


def test_repeated_typing_starts_are_coalesced() -> None:
    c = connected()
    c.joined(ROOM)
    assert only(c.emit("/chat", 1, "typing:start", {"room": ROOM}), TypingChange)
    c.now = 1.0
    repeat = c.emit("/chat", 2, "typing:start", {"room": ROOM})
    assert not any(isinstance(a, TypingChange) for a in repeat)
    assert reply(repeat, "/chat", 2) == {"ok": True}
    assert only(c.emit("/chat", 3, "typing:stop", {"room": ROOM}), TypingChange)
    c.now = 1.5
    assert only(c.emit("/chat", 4, "typing:start", {"room": ROOM}), TypingChange)
    c.now = 3.6
    assert only(c.emit("/chat", 5, "typing:start", {"room": ROOM}), TypingChange)


# --- I/O results fed back: the core answers ------------------------------------------------


def test_opened_sends_the_connect_reply_with_sid_and_pid() -> None:
    c = client()
    actions = c.session.receive("40/chat," + json.dumps({"token": ALICE}), 0.0)
    socket = only(actions, Opened).socket

    assert texts(c.session.opened(socket)) == [f'40/chat,{{"sid":"{socket.sid}",'
                                               f'"pid":"{socket.pid}"}}']


def test_recovered_socket_takes_the_sessions_ids_and_rooms() -> None:
    c = client()
    actions = c.session.receive("40/chat," + json.dumps({"token": ALICE, "pid": "old-pid",
                                                         "offset": "x"}), 0.0)
    opened = only(actions, Opened)
    assert opened.restore == Restore("old-pid", "x")

    answer = c.session.opened(opened.socket, Recovered("old-pid", "old-sid",
                                                       frozenset({"user:alice", ROOM})))

    assert texts(answer) == ['40/chat,{"sid":"old-sid","pid":"old-pid"}']
    assert answer[0] == Announce(opened.socket)  # with its recovered rooms
    assert opened.socket.rooms == {"user:alice", ROOM}
    c.sockets["/chat"] = opened.socket
    assert only(c.emit("/chat", 1, "message:send", {"room": ROOM, "text": "hi", "id": "m"}),
                Publish)  # a member of its recovered rooms at once


def test_refused_socket_gets_connect_error_and_is_forgotten() -> None:
    c = client()
    socket = only(c.session.receive("40/chat," + json.dumps({"token": ALICE}), 0.0),
                  Opened).socket

    answer = c.session.refused(socket)

    assert texts(answer) == ['44/chat,{"message":"too many connections",'
                             '"data":{"code":"too_many_connections"}}']
    assert "/chat" not in c.session.sockets
    assert only(c.emit("/chat", 1, "room:join", {"room": ROOM}), Close).code == CloseCode.POLICY


def test_joined_adds_the_room_and_acks() -> None:
    c = connected()
    join = only(c.emit("/chat", 1, "room:join", {"room": ROOM}), Join)
    assert ROOM not in join.socket.rooms  # not before the shell says so

    answer = c.session.joined(join)

    assert reply(answer, "/chat", 1) == {"ok": True, "room": ROOM}
    assert answer[0] == Announce(join.socket)  # presence hears before the ack goes
    assert ROOM in join.socket.rooms
    assert only(c.emit("/chat", 2, "message:send", {"room": ROOM, "text": "hi", "id": "m"}),
                Publish)


def test_join_again_without_since_is_acked_without_io() -> None:
    c = connected()
    c.joined(ROOM)

    actions = c.emit("/chat", 2, "room:join", {"room": ROOM})

    assert reply(actions, "/chat", 2) == {"ok": True, "room": ROOM}
    assert not any(isinstance(action, Join) for action in actions)
    assert only(c.emit("/chat", 3, "room:join", {"room": ROOM, "since": 4}), Join).since == 4


@pytest.mark.parametrize(("why", "code"), [(JoinFailure.UNAVAILABLE, "unavailable"),
                                           (JoinFailure.BACKLOG_TOO_LARGE, "not_recoverable")])
def test_join_failed_answers_with_a_retry_hint_and_leaves_rooms_alone(
        why: JoinFailure, code: str) -> None:
    c = connected()
    join = only(c.emit("/chat", 1, "room:join", {"room": ROOM, "since": 0}), Join)

    answer = c.session.join_failed(join, why)

    assert reply(answer, "/chat", 1)["error"]["code"] == code
    assert reply(answer, "/chat", 1)["error"]["retry_after_ms"] == 1000
    assert Failed("/chat", code) in answer
    assert ROOM not in join.socket.rooms


def test_join_failed_without_an_ack_id_is_a_request_error() -> None:
    c = connected()
    join = only(c.emit("/chat", None, "room:join", {"room": ROOM}), Join)

    event = pushed(c.session.join_failed(join, JoinFailure.UNAVAILABLE), "/chat")

    assert event == [["request:error", {"code": "unavailable", "message": "try again",
                                        "retry_after_ms": 1000, "event": "room:join"}]]


def test_leave_takes_the_room_off_before_the_ack() -> None:
    c = connected()
    c.joined(ROOM)

    actions = c.emit("/chat", 4, "room:leave", {"room": ROOM})

    assert [type(a) for a in actions if not isinstance(a, Observed)] == [
        Announce, Leave, SendText]  # presence hears first, the ack comes once the feed is left
    assert reply(actions, "/chat", 4) == {"ok": True}
    assert ROOM not in c.sockets["/chat"].rooms


def test_leave_of_a_room_not_joined_is_acked_without_io() -> None:
    actions = connected().emit("/chat", 4, "room:leave", {"room": ROOM})

    assert reply(actions, "/chat", 4) == {"ok": True}
    assert not any(isinstance(action, Leave) for action in actions)


def test_published_acks_with_the_logs_position() -> None:
    c = connected()
    c.joined(ROOM)
    publish = only(c.emit("/chat", 7, "message:send", {"room": ROOM, "text": "hi", "id": "m"}),
                   Publish)

    assert reply(c.session.published(publish, PublishResult(12, False)), "/chat", 7) == {
        "ok": True, "id": "m", "seq": 12, "duplicate": False}
    assert reply(c.session.published(publish, PublishResult(12, True)), "/chat", 7)[
        "duplicate"] is True
    failed = c.session.published(publish, None)
    assert reply(failed, "/chat", 7)["error"] == {
        "code": "unavailable", "message": "not confirmed, retry with the same id",
        "retry_after_ms": 1000}
    assert Failed("/chat", "unavailable") in failed


def test_published_without_a_message_id_acks_ok() -> None:
    c = connected()
    c.joined(ROOM)
    change = only(c.emit("/chat", 2, "typing:start", {"room": ROOM}), TypingChange)
    relay = only(c.session.typing_unrouted(change), Publish)

    assert reply(c.session.published(relay, PublishResult()), "/chat", 2) == {"ok": True}


def test_history_page_is_the_ack_with_each_payload_and_its_position() -> None:
    c = connected()
    history = only(c.emit("/chat", 3, "room:history", {"room": ROOM}), History)
    logged = envelope.pack(json.dumps(["message:received", {"room": ROOM, "text": "hi"}])
                           .encode(), ())
    page = Page(((4, 0, logged), (9, 4, b"not an envelope")), complete=True)

    assert reply(c.session.history_page(history, page), "/chat", 3) == {
        "ok": True, "messages": [{"room": ROOM, "text": "hi", "seq": 4, "prev": 0}],
        "complete": True}


def test_history_gone_is_not_recoverable_and_a_silent_log_unavailable() -> None:
    c = connected()
    history = only(c.emit("/chat", 3, "room:history", {"room": ROOM, "since": 1}), History)

    gone = c.session.history_page(history, None)
    assert reply(gone, "/chat", 3)["error"] == {
        "code": "not_recoverable", "message": "the log no longer reaches back there"}
    assert Failed("/chat", "not_recoverable") in gone
    silent = c.session.log_unavailable(history)
    assert reply(silent, "/chat", 3)["error"]["code"] == "unavailable"
    assert reply(silent, "/chat", 3)["error"]["retry_after_ms"] == 1000


def test_presence_answer_is_the_ack_and_none_is_unavailable() -> None:
    c = connected()
    query = only(c.emit("/chat", 3, "room:presence", {"room": ROOM}), PresenceQuery)
    members = {"ok": True, "users": ["alice"]}

    assert reply(c.session.presence_answer(query, members), "/chat", 3) == members
    assert reply(c.session.presence_answer(query, None), "/chat", 3)["error"]["message"] == (
        "presence is not available; try again")


def test_typing_is_acked_when_presence_takes_it_else_published_to_the_room() -> None:
    c = connected()
    c.joined(ROOM)
    change = only(c.emit("/chat", 2, "typing:start", {"room": ROOM}), TypingChange)

    assert reply(c.session.typing_routed(change), "/chat", 2) == {"ok": True}
    publish = only(c.session.typing_unrouted(change), Publish)
    assert (publish.room, publish.message_id, publish.reply) == (ROOM, None, change.reply)
    assert json.loads(publish.args) == ["typing:start", {"room": ROOM, "user": "alice"}]
