"""Hypothesis strategies shared by the fuzz layers, and the input counters they report.

Garbage is built from the wire's own fragments (type digits, ``N-``, namespaces, ack ids,
JSON, placeholders, reserved names, surrogates, huge numbers, deep nesting), so generated text
reaches past the first byte of the parsers instead of dying at ``unknown packet type``.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any, TypeVar

from hypothesis import strategies as st

from shared.protocol.events import CLIENT_EVENTS, RESERVED, SERVER_EVENTS

T = TypeVar("T")

COUNTS: Counter[str] = Counter()
"""Inputs fed to the code under test, per layer (printed in the terminal summary)."""


def dumps(value: Any) -> str:
    """Stdlib JSON: unlike orjson it writes integers past 64 bits and lone surrogates
    (as ``\\udXXX`` escapes), both of which a fuzzer should send."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=True)


SURROGATES = st.characters(categories=["Cs"])
SMALL_TEXT = st.text(max_size=12)
TEXT_WITH_SURROGATES = st.lists(st.one_of(st.characters(), SURROGATES), max_size=8).map("".join)

HUGE_NUMBERS = st.sampled_from([
    "1e400", "-1e400", "9" * 400, "1" + "0" * 30, "18446744073709551616", "-9223372036854775809",
    "1e-400", "NaN", "Infinity", "-Infinity", "-0", "0.0e0", "1E+2", "0x10", "01", ".5", "5.",
])

NAMESPACES = st.sampled_from([
    "/chat", "/", "/live-updates", "/notifications", "/nope", "/chat?x=1", "/chat?", "//",
    "/chat/", "/CHAT", "/ chat", "/ch,at", "/\u00e9", "/" + "a" * 300, "/" + "n" * 256, "",
    "chat", "/chat\x00", "/\ud800",
])

KNOWN_EVENTS = sorted(CLIENT_EVENTS | SERVER_EVENTS)
EVENT_NAMES: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(KNOWN_EVENTS),
    st.sampled_from(sorted(RESERVED)),
    st.sampled_from(["", " ", "x" * 1000, "__proto__", "constructor", "room:join ", "ROOM:JOIN",
                     "room:*", "message:send\x00", "poll:vote", "\u202eroom:join"]),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.none(),
    st.booleans(),
    SMALL_TEXT,
)

ROOMS: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from([
        "room:a", "room:general", "user:alice", "user:other", "user:", "user:alice.>", "x.>",
        "*", ">", "a b", "a.b", "room:a.b", "room:*", "room:>", "room:\u00e9", "room:a\tb",
        "room:a\r\nSUB x 1", "", "r" * 128, "room:" + "r" * 123, "r" * 129, "room:x\x00",
        "$JS.API.>", "_INBOX.>", "room:a\ud800",
    ]),
    st.integers(),
    st.none(),
    st.lists(st.just("room:a"), max_size=2),
    SMALL_TEXT,
)

JSON_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
    SMALL_TEXT,
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda kids: st.one_of(st.lists(kids, max_size=4),
                           st.dictionaries(SMALL_TEXT, kids, max_size=4)),
    max_leaves=8,
)

PLACEHOLDERS = st.one_of(
    st.integers(-3, 12).map(lambda n: {"_placeholder": True, "num": n}),
    st.sampled_from([
        {"_placeholder": True, "num": 1.0}, {"_placeholder": True, "num": "0"},
        {"_placeholder": True, "num": True}, {"_placeholder": True}, {"_placeholder": "true",
                                                                      "num": 0},
        {"_placeholder": True, "num": 0, "extra": 1}, {"_placeholder": True, "num": 2**70},
    ]),
)

PAYLOADS: st.SearchStrategy[Any] = st.one_of(
    st.fixed_dictionaries({"room": ROOMS}),
    st.fixed_dictionaries({"room": ROOMS}, optional={
        "since": st.one_of(st.integers(-5, 2**70), st.floats(), JSON_LEAVES),
        "before": st.one_of(st.integers(-5, 2**70), JSON_LEAVES),
        "limit": st.one_of(st.integers(-5, 5000), st.floats(), JSON_LEAVES),
    }),
    st.fixed_dictionaries({"room": ROOMS, "text": st.one_of(TEXT_WITH_SURROGATES,
                                                            st.just("x" * 4097), JSON_LEAVES),
                           "id": st.one_of(st.just("m-1"), st.just("i" * 65), JSON_LEAVES)},
                          optional={"attachment": st.one_of(PLACEHOLDERS, JSON_LEAVES),
                                    "extra": JSON_LEAVES}),
    PLACEHOLDERS,
    JSON_VALUES,
)

EVENT_ARRAYS = st.tuples(EVENT_NAMES, st.lists(PAYLOADS, max_size=3)).map(
    lambda t: dumps([t[0], *t[1]]))

NESTING = st.one_of(
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 3000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.integers(1, 2000).map(lambda n: "[" * n),
    st.integers(1, 200).map(lambda n: '["x",' + "[" * n + '{"_placeholder":true,"num":0}'
                            + "]" * n + "]"),
)

JSON_FRAGMENTS = st.one_of(
    JSON_VALUES.map(dumps), EVENT_ARRAYS, PLACEHOLDERS.map(dumps), HUGE_NUMBERS, NESTING,
    st.sampled_from(['"\\ud800"', '"\\udc00\\ud800"', '["\\ud83d"]', '"\\u0000"', "[,]", "[1,]",
                     "{}", "[]", "null", '{"a"}', '["connect"]', "[null]", '"', "\\"]),
)

ACK_IDS = st.one_of(
    st.integers(0, 10**25).map(str),
    st.sampled_from(["0", "00", "007", "-1", "1.5", "9" * 15, "9" * 16, "1e3", "\u0661"]),
)

ATTACHMENT_COUNTS = st.one_of(
    st.integers(0, 120).map(lambda n: f"{n}-"),
    st.sampled_from(["-", "x-", "01-", "999-", "1-1-", "\u0661-", " 1-"]),
)

FRAGMENTS = st.one_of(
    st.sampled_from(list("0123456789b")),
    ATTACHMENT_COUNTS,
    NAMESPACES,
    NAMESPACES.map(lambda n: n + ","),
    ACK_IDS,
    JSON_FRAGMENTS,
    SURROGATES,
    st.sampled_from(list(",[]{}\":-/?\\\x00\n ")),
    SMALL_TEXT,
)

STRUCTURED_TEXT = st.lists(FRAGMENTS, max_size=8).map("".join)
"""Free concatenations of wire fragments."""

PACKET_TEXT = st.tuples(
    st.sampled_from(list("0123456")) | st.sampled_from(["7", "9", "", "x", "\u0662"]),
    st.one_of(st.just(""), ATTACHMENT_COUNTS),
    st.one_of(st.just(""), NAMESPACES.map(lambda n: n + ","), NAMESPACES),
    st.one_of(st.just(""), ACK_IDS),
    st.one_of(st.just(""), JSON_FRAGMENTS),
).map("".join)
"""Socket.IO packets in header order: type, attachments, namespace, ack id, payload."""

ANY_SOCKETIO_TEXT = st.one_of(PACKET_TEXT, STRUCTURED_TEXT, st.text(), TEXT_WITH_SURROGATES)


# --- the bulk generator --------------------------------------------------------------------
#
# Hypothesis strategies cost about a millisecond per packet, so a hundred thousand inputs would
# take minutes. The bulk of the volume comes from this plain generator over the same
# vocabulary, driven by a ``random.Random`` that hypothesis seeds (``st.randoms``): runs stay
# deterministic under ``derandomize=True`` and a failing example prints its seed and input.

_TYPES: list[str] = [*"0123456", "7", "9", "", "x", "\u0662"]
_ATTACH = [f"{n}-" for n in (0, 1, 1, 2, 3, 9, 10, 11, 99)] + [
    "-", "x-", "01-", "999-", "1-1-", "\u0661-", " 1-"]
_NSPS = ["/chat", "/", "/live-updates", "/notifications", "/nope", "/chat?x=1", "/chat?", "//",
         "/chat/", "/CHAT", "/ chat", "/ch,at", "/\u00e9", "/" + "a" * 300, "/" + "n" * 256,
         "", "chat", "/chat\x00"]
_ACKS = ["0", "00", "007", "1", "42", "-1", "1.5", "9" * 15, "9" * 16, "9" * 40, "1e3",
         "\u0661"]
_NAMES: list[Any] = [*KNOWN_EVENTS, *sorted(RESERVED), "", " ", "x" * 1000, "__proto__",
                     "constructor", "ROOM:JOIN", "room:*", "message:send\x00", "poll:vote",
                     "\u202eroom:join", 0, -1, 2**70, 1.5, -0.0, None, True, False, [], {}]
_ROOMS: list[Any] = ["room:a", "room:general", "user:alice", "user:other", "user:",
                     "user:alice.>", "x.>", "*", ">", "a b", "a.b", "room:a.b", "room:*",
                     "room:>", "room:\u00e9", "room:a\tb", "room:a\r\nSUB x 1", "", "r" * 128,
                     "room:" + "r" * 123, "r" * 129, "room:x\x00", "$JS.API.>", "_INBOX.>",
                     "room:\u202e", 7, None, True, ["room:a"], {"room": "room:a"}, 1.5]
_LEAVES: list[Any] = [None, True, False, 0, -1, 1, 2**31, 2**63, 2**64, 2**70, -(2**70), 0.5,
                      1e300, -0.0, 1.0, "", "x", "\u00e9", "\U0001f600", "\x00", "\u202e",
                      "<script>alert(1)</script>", "x" * 5000]
_HUGE = ["1e400", "-1e400", "9" * 400, "1" + "0" * 30, "18446744073709551616",
         "-9223372036854775809", "1e-400", "NaN", "Infinity", "-Infinity", "-0", "0.0e0",
         "1E+2", "0x10", "01", ".5", "5."]
_SPECIAL_JSON = ['"\\ud800"', '"\\udc00\\ud800"', '["\\ud83d"]', '"\\u0000"', "[,]", "[1,]",
                 "{}", "[]", "null", '{"a"}', '["connect"]', "[null]", '"', "\\", "[", "]", "{",
                 '{"_placeholder":true,"num":0}', "\ufeff[]", " []", "[] ", "[]\n", "[1]x"]
_PUNCT = list(",[]{}\":-/?\\\x00\n ")
_PLACEHOLDER_NUMS: list[Any] = [-1, 0, 0, 1, 2, 9, 10, 11, 2**70, 1.0, "0", True, None]


class Garbage:
    """Malformed Socket.IO / Engine.IO input from the wire's own vocabulary."""

    def __init__(self, rnd: random.Random) -> None:
        self.r = rnd

    def pick(self, items: Sequence[T]) -> T:
        return items[self.r.randrange(len(items))]

    def text(self, size: int = 8) -> str:
        r = self.r
        ranges = ((0x20, 0x7E), (0, 0x1F), (0x80, 0x2FF), (0x200B, 0x206F), (0xD800, 0xDFFF),
                  (0x1F600, 0x1F64F), (0xFFF0, 0xFFFF))
        out = []
        for _ in range(r.randrange(size + 1)):
            low, high = ranges[r.randrange(len(ranges))]
            out.append(chr(r.randint(low, high)))
        return "".join(out)

    def placeholder(self) -> dict[str, Any]:
        if self.r.random() < 0.8:
            return {"_placeholder": True, "num": self.pick(_PLACEHOLDER_NUMS)}
        odd: list[dict[str, Any]] = [{"_placeholder": True}, {"_placeholder": "true", "num": 0},
                                     {"_placeholder": True, "num": 0, "extra": 1}, {"num": 0}]
        return self.pick(odd)

    def json(self, depth: int = 3) -> Any:
        r = self.r
        roll = r.random()
        if depth <= 0 or roll < 0.45:
            return self.pick(_LEAVES) if r.random() < 0.7 else self.text()
        if roll < 0.6:
            return self.placeholder()
        if roll < 0.8:
            return [self.json(depth - 1) for _ in range(r.randrange(4))]
        keys = ["room", "text", "id", "since", "before", "limit", "attachment", "a", ""]
        return {self.pick(keys): self.json(depth - 1) for _ in range(r.randrange(4))}

    def room(self) -> Any:
        return self.pick(_ROOMS) if self.r.random() < 0.85 else self.text(6)

    def payload(self) -> Any:
        r = self.r
        roll = r.random()
        if roll < 0.3:
            body: dict[str, Any] = {"room": self.room()}
            for key in ("since", "before", "limit"):
                if r.random() < 0.25:
                    body[key] = self.pick([*_LEAVES, -5, 0, 1, 1000, 1001, 5.0, 2**70])
            return body
        if roll < 0.6:
            body = {"room": self.room(),
                    "text": self.pick(["hi", "", " ", "x" * 4096, "x" * 4097, "\u202e\x07",
                                       self.text(12), 5, None]),
                    "id": self.pick(["m-1", "", "i" * 64, "i" * 65, 5, None, self.text(4)])}
            if r.random() < 0.3:
                body["attachment"] = self.placeholder() if r.random() < 0.7 else self.json(1)
            if r.random() < 0.1:
                body["extra"] = self.json(1)
            for key in ("room", "text", "id"):
                if r.random() < 0.1:
                    del body[key]
            return body
        return self.json()

    def event_array(self) -> str:
        r = self.r
        name = self.pick(_NAMES) if r.random() < 0.85 else self.text(6)
        args = [self.payload() for _ in range(self.pick([0, 1, 1, 1, 1, 2, 3]))]
        return dumps([name, *args])

    def nesting(self) -> str:
        n = self.r.randint(1, 1100)
        kind = self.r.randrange(4)
        if kind == 0:
            return "[" * n + "]" * n
        if kind == 1:
            return '{"a":' * n + "1" + "}" * n
        if kind == 2:
            return "[" * n
        return ('["note:add",{"room":"room:a","x":' + "[" * n + "]" * n + "}]")

    def json_fragment(self) -> str:
        roll = self.r.random()
        if roll < 0.45:
            return self.event_array()
        if roll < 0.65:
            return dumps(self.json())
        if roll < 0.75:
            return self.pick(_SPECIAL_JSON)
        if roll < 0.85:
            return self.pick(_HUGE)
        if roll < 0.92:
            return self.nesting()
        return dumps(self.placeholder())

    def ack_id(self) -> str:
        return self.pick(_ACKS) if self.r.random() < 0.5 else str(self.r.randrange(10**6))

    def packet(self, nsps: list[str] = _NSPS) -> str:
        """Header order: type, attachments, namespace, ack id, payload (each maybe absent)."""
        r = self.r
        kind = self.pick(_TYPES) if r.random() < 0.3 else self.pick(["2", "2", "5", "0", "3"])
        parts = [kind]
        if r.random() < (0.8 if kind in "56" else 0.05):
            parts.append(self.pick(_ATTACH))
        if r.random() < 0.85:
            nsp = self.pick(nsps)
            parts.append(nsp + "," if r.random() < 0.9 else nsp)
        if r.random() < 0.6:
            parts.append(self.ack_id())
        if r.random() < 0.9:
            parts.append(self.json_fragment())
        return "".join(parts)

    def fragment(self) -> str:
        choice = self.r.randrange(8)
        if choice == 0:
            return self.pick(_TYPES)
        if choice == 1:
            return self.pick(_ATTACH)
        if choice == 2:
            return self.pick(_NSPS) + self.pick(["", ","])
        if choice == 3:
            return self.ack_id()
        if choice == 4:
            return self.json_fragment()
        if choice == 5:
            return chr(self.r.randint(0xD800, 0xDFFF))
        if choice == 6:
            return self.pick(_PUNCT)
        return self.text()

    def soup(self) -> str:
        head = self.pick(_TYPES) if self.r.random() < 0.6 else ""
        return head + "".join(self.fragment() for _ in range(self.r.randrange(1, 8)))

    def socketio_text(self) -> str:
        roll = self.r.random()
        if roll < 0.7:
            return self.packet()
        if roll < 0.95:
            return self.soup()
        return self.text(20)


SEEDS = st.randoms(use_true_random=True)
