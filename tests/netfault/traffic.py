"""The soak's traffic: publishers sending uniquely-id'd messages until told to stop, and
receivers recording every report of one client; then the verdict on what each received.

A publisher sends its messages one at a time, round-robin over the rooms, and re-sends the
same id until it is acked (a lost ack, a timeout, a transport gone mid-request), so every id
it started ends up stored exactly once. ``expected`` is then every id in the order it was
acked; a receiver passes when each room holds exactly those ids, ``seq`` rising, every
``prev`` naming the message before, and each sender's own messages in the order it sent them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.support.jsclient import JsClients

REPORTS = {"event", "connect", "disconnect", "connect_error"}


class Publisher:
    def __init__(self, js: JsClients, client: str, run: str, rooms: Sequence[str],
                 interval: float, ack_wait: float) -> None:
        self.js, self.client, self.rooms = js, client, list(rooms)
        self.prefix, self.interval, self.ack_wait = f"{run}-{client}", interval, ack_wait
        self.acked: dict[str, list[str]] = {room: [] for room in rooms}
        self.resends = 0
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        for n in itertools.count():
            if self._stop.is_set():
                return
            room, msg_id = self.rooms[n % len(self.rooms)], f"{self.prefix}-{n}"
            await self._send_until_acked(room, msg_id)
            self.acked[room].append(msg_id)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)

    async def _send_until_acked(self, room: str, msg_id: str) -> None:
        payload = {"room": room, "text": msg_id, "id": msg_id}
        while True:
            try:
                ack = await self.js.call(self.client, "message:send", payload,
                                         within=self.ack_wait)
            except TimeoutError:
                ack = None
            if isinstance(ack, dict) and ack.get("ok"):
                return
            self.resends += 1
            await asyncio.sleep(0.05)


@dataclass
class Receiver:
    """Everything one client reported, from its first connect on."""

    js: JsClients
    client: str
    kind: str = "socket.io-client"
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    reconnects: Counter[str] = field(default_factory=Counter)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    why: list[str] = field(default_factory=list)  # disconnect reasons, connect errors
    online: bool = True  # the clients are connected when the soak starts

    async def run(self) -> None:
        while True:
            try:
                msg = await self.js.expect(self.client, REPORTS, within=3600)
            except TimeoutError:
                continue
            self.note(msg)

    def note(self, msg: dict[str, Any]) -> None:
        """One report, in the order the client made them."""
        if msg["type"] == "event" and msg["event"] == "message:received":
            message = msg["args"][0]
            self.messages.setdefault(message["room"], []).append(message)
        elif msg["type"] == "connect":
            self.online = True
            self.reconnects[f"{self.kind} recovered" if msg["recovered"]
                            else f"{self.kind} fresh"] += 1
        else:
            if msg["type"] == "disconnect":
                if self.online:  # a connected socket dropped (not an attempt that died)
                    self.reconnects[f"{self.kind} dropped"] += 1
                self.online = False
            self.reconnects[f"{self.kind} {msg['type']}"] += 1
            self.why.append(f"{msg['type']}: {msg.get('reason') or msg.get('message')}")
        self.changed.set()

    def count(self) -> int:
        return sum(len(got) for got in self.messages.values())

    def connected(self) -> bool:
        """The last connect or disconnect the client reported was a connect. Counting them
        does not tell: socket.io-client also reports a disconnect when a reconnect attempt's
        Engine.IO session dies before its namespace CONNECT is answered (its manager's close
        reaches the socket either way), so one outage can bring two disconnects and one
        connect."""
        return self.online

    async def wait_for(self, total: int, within: float) -> None:
        """Until ``total`` messages arrived and the client is connected again."""
        async with asyncio.timeout(within):
            while self.count() < total or not self.connected():
                self.changed.clear()
                await self.changed.wait()


def expected_ids(publishers: Sequence[Publisher]) -> dict[str, set[str]]:
    rooms: dict[str, set[str]] = {}
    for publisher in publishers:
        for room, ids in publisher.acked.items():
            rooms.setdefault(room, set()).update(ids)
    return rooms


def problems(receiver: Receiver, publishers: Sequence[Publisher]) -> list[str]:
    """What is wrong with one receiver's messages (nothing: every one once, in order)."""
    found = []
    for room, ids in expected_ids(publishers).items():
        got = receiver.messages.get(room, [])
        seen = Counter(m["id"] for m in got)
        dupes = sum(n - 1 for n in seen.values())
        missing, stray = len(ids - set(seen)), len(set(seen) - ids)
        if dupes or missing or stray:
            found.append(f"{receiver.client} {room}: {missing} missing, {dupes} duplicated, "
                         f"{stray} unexpected of {len(ids)}")
        breaks = sum(1 for a, b in itertools.pairwise(got)
                     if not (b["seq"] > a["seq"] and b["prev"] == a["seq"]))
        if breaks:
            found.append(f"{receiver.client} {room}: {breaks} seq/prev breaks")
        found.extend(_sender_order(receiver.client, room, got, publishers))
    return found


def _sender_order(client: str, room: str, got: list[dict[str, Any]],
                  publishers: Sequence[Publisher]) -> list[str]:
    order = [m["id"] for m in got]
    return [f"{client} {room}: {p.client}'s messages out of order" for p in publishers
            if [i for i in order if i.startswith(p.prefix + "-")] != p.acked[room]]
