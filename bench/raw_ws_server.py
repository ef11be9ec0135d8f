"""The ceiling for the room fan-out benchmark: one process, `websockets` + uvloop + orjson.

It speaks exactly the minimal Socket.IO subset the load generator uses (see bench/README.md):
the Engine.IO open packet, the namespace CONNECT reply with a sid, ``room:join`` (ack) and
``message:send`` (ack to the sender, ``websockets.broadcast`` of one ``message:received``
frame to the room's members). It validates nothing and answers nothing else; a ping goes to
every connection each 25 s. No NATS: this is what one process and one core can do.

Usage: ``python bench/raw_ws_server.py PORT [--max-seconds N]``. Prints
``READY {"port": PORT, "pid": PID}`` once listening; exits by itself after N seconds
(default 1800) or on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import itertools
import os
import secrets
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Iterable

import orjson
import uvloop
import websockets
from websockets.asyncio.server import ServerConnection, serve

PING_INTERVAL_S = 25.0
OPEN_PACKET = (
    "0"
    + orjson.dumps(
        {
            "sid": "",
            "upgrades": [],
            "pingInterval": int(PING_INTERVAL_S * 1000),
            "pingTimeout": 20000,
            "maxPayload": 1_000_000,
        }
    ).decode()
)

rooms: defaultdict[str, set[ServerConnection]] = defaultdict(set)
members_of: dict[ServerConnection, set[str]] = {}
_sids = itertools.count()


def _sub_of(token: object) -> str:
    """The token's ``sub``, read without verification (the ceiling does no auth)."""
    if not isinstance(token, str) or token.count(".") != 2:
        return "anonymous"
    body = token.split(".")[1]
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return "anonymous"
    sub = claims.get("sub") if isinstance(claims, dict) else None
    return sub if isinstance(sub, str) else "anonymous"


def _split_packet(data: str, prefix: str) -> tuple[str, str] | None:
    """``<prefix><ack digits><json>`` -> (ack id, json text)."""
    rest = data[len(prefix) :]
    end = 0
    while end < len(rest) and rest[end].isdigit():
        end += 1
    return (rest[:end], rest[end:]) if end else None


def _on_event(ws: ServerConnection, sub: str, nsp: str, data: str) -> str | None:
    """Handle one EVENT; returns the ack frame to send back, if any."""
    split = _split_packet(data, f"42{nsp},")
    if split is None:
        return None
    ack_id, body = split
    try:
        args = orjson.loads(body)
        name, payload = args[0], args[1]
        room = payload["room"]
    except (orjson.JSONDecodeError, IndexError, KeyError, TypeError):
        return None
    if name == "room:join":
        rooms[room].add(ws)
        members_of[ws].add(room)
        return f"43{nsp},{ack_id}" + orjson.dumps([{"ok": True, "room": room}]).decode()
    if name == "message:send":
        msg_id = payload.get("id")
        event = {
            "room": room,
            "id": msg_id,
            "from": sub,
            "text": payload.get("text"),
            "ts": int(time.time() * 1000),
        }
        frame = f"42{nsp}," + orjson.dumps(["message:received", event]).decode()
        websockets.broadcast(rooms.get(room, ()), frame)
        return f"43{nsp},{ack_id}" + orjson.dumps([{"ok": True, "id": msg_id}]).decode()
    return None


async def handler(ws: ServerConnection) -> None:
    members_of[ws] = set()
    sub = "anonymous"
    try:
        await ws.send(OPEN_PACKET.replace('"sid":""', f'"sid":"{secrets.token_urlsafe(15)}"', 1))
        async for data in ws:
            if not isinstance(data, str) or data == "3":
                continue
            if data.startswith("42/"):
                nsp = data[2 : data.index(",")] if "," in data else data[2:]
                reply = _on_event(ws, sub, nsp, data)
                if reply is not None:
                    await ws.send(reply)
            elif data.startswith("40"):
                nsp, _, auth = data[2:].partition(",")
                if auth:
                    with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
                        sub = _sub_of(orjson.loads(auth).get("token"))
                sid = f"raw{next(_sids)}"
                await ws.send(f"40{nsp}," + orjson.dumps({"sid": sid}).decode())
    except websockets.ConnectionClosed:
        pass
    finally:
        for room in members_of.pop(ws, ()):
            members = rooms.get(room)
            if members is not None:
                members.discard(ws)
                if not members:
                    del rooms[room]


async def _pinger(server_conns: Iterable[ServerConnection]) -> None:
    while True:
        await asyncio.sleep(PING_INTERVAL_S)
        websockets.broadcast(server_conns, "2")


async def main(port: int, max_seconds: float) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.call_later(max_seconds, stop.set)
    async with serve(
        handler,
        "127.0.0.1",
        port,
        compression=None,
        ping_interval=None,
        max_size=1_000_000,
    ) as server:
        pinger = asyncio.create_task(_pinger(members_of.keys()))
        bound = next(iter(server.sockets)).getsockname()[1]
        print("READY " + orjson.dumps({"port": bound, "pid": os.getpid()}).decode(), flush=True)
        await stop.wait()
        pinger.cancel()


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("port", type=int, help="TCP port on 127.0.0.1 (0 = any free port)")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=1800.0,
        help="exit after this many seconds (default 1800)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = _parse_args(sys.argv[1:])
    uvloop.run(main(args.port, args.max_seconds))
