"""Fan-out members as the tests see them: an outbox that keeps its frames, message bodies
as the log holds them, and the events a member was written, decoded."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.delivery import Member

CHAT = "/chat"


class FakeOutbox:
    """What the fan-out needs of an :class:`~gateway.outbox.Outbox`."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.queued = 0

    def push(self, frame: bytes) -> bool:
        self.frames.append(frame)
        self.queued += len(frame)
        return True


def member(offsets: bool = True) -> Member:
    return Member(FakeOutbox(), offsets=offsets)  # type: ignore[arg-type]


def body(room: str, text: str) -> bytes:
    return orjson.dumps(["message:received", {"room": room, "id": f"id-{text}", "text": text}])


def unframe(frame: bytes) -> bytes:
    """The payload of one unmasked server text frame."""
    assert frame[0] == 0x81
    size = frame[1]
    start = 2 if size < 126 else 4 if size == 126 else 10
    return frame[start:]


def events(m: Member, nsp: str = CHAT) -> list[list[Any]]:
    found = []
    for frame in m.outbox.frames:
        head = f"42{nsp},".encode()
        payload = unframe(frame)
        assert payload.startswith(head), payload
        found.append(orjson.loads(payload[len(head) :]))
    return found


def texts(m: Member) -> list[str]:
    return [event[1]["text"] for event in events(m)]
