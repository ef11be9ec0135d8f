"""The demo's ``web/events.js`` and ``shared/protocol/events.py`` name the same events.

The page and the server must never disagree on a name: a typo would make an event vanish
silently (Socket.IO drops events nobody listens to).
"""

from __future__ import annotations

import re
from pathlib import Path

from shared.protocol import events

EVENTS_JS = Path(__file__).resolve().parents[2] / "web" / "events.js"
EXPORT = re.compile(r'export const ([A-Z][A-Z0-9_]*) = "([^"\\]*)";')
EVENT_NAME = re.compile(r"[a-z][a-z0-9_-]*:[a-z][a-z0-9_-]*")


def js_constants() -> dict[str, str]:
    """Every ``export const`` line; any other non-comment line fails the format check."""
    constants: dict[str, str] = {}
    for number, line in enumerate(EVENTS_JS.read_text().splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("//"):
            continue
        match = EXPORT.fullmatch(stripped)
        assert match, f"web/events.js:{number}: not `export const NAME = \"value\";`: {line!r}"
        assert match[1] not in constants, f"web/events.js:{number}: {match[1]} exported twice"
        constants[match[1]] = match[2]
    return constants


def python_constants() -> dict[str, str]:
    return {
        name: value
        for name, value in vars(events).items()
        if not name.startswith("_") and isinstance(value, str) and EVENT_NAME.fullmatch(value)
    }


def test_events_js_matches_the_python_constants() -> None:
    assert js_constants() == python_constants()


def test_both_sides_carry_the_whole_contract() -> None:
    expected = {
        "ROOM_JOIN": "room:join", "ROOM_LEAVE": "room:leave", "MESSAGE_SEND": "message:send",
        "ROOM_HISTORY": "room:history", "ROOM_PRESENCE": "room:presence",
        "TYPING_START": "typing:start", "TYPING_STOP": "typing:stop",
        "MESSAGE_RECEIVED": "message:received", "PRESENCE_UPDATE": "presence:update",
        "REQUEST_ERROR": "request:error",
    }
    assert expected.items() <= js_constants().items()
