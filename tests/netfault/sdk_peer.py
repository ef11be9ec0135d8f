"""The Python SDK behind the same JSON-lines remote control as ``tests/js/remote.mjs``, so that
:class:`tests.support.jsclient.JsClients` drives SDK clients in the namespace as it drives
socket.io-client: ``python -m tests.netfault.sdk_peer`` (inside the namespace, by
``ip netns exec``).

In: ``connect`` (``opts.auth.token``; ``opts.sdk`` = SwitchboardClient keyword options),
``emit`` of ``room:join`` / ``message:send`` with an ``ack`` tag, ``close``, ``exit``.
Out: ``connect`` (again after every reconnect, with ``recovered``), ``disconnect``,
``connect_error``, ``event`` (``message:received`` once per message, as the SDK delivers it
to the app), ``ack`` (the request's answer, or ``{ok: false, error: {code}}``), on
``close`` the client's ``counters``, and ``failure`` for a command to a client that does not
exist.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from client import ConnectionState, RequestFailed, SwitchboardClient, SwitchboardError


def out(msg: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def failure(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


class Peers:
    def __init__(self) -> None:
        self.clients: dict[str, SwitchboardClient] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def connect(self, cmd: dict[str, Any]) -> None:
        name, opts = cmd["id"], cmd.get("opts") or {}
        client = SwitchboardClient(cmd["url"], opts["auth"]["token"], namespaces=(cmd["nsp"],),
                                   **opts.get("sdk", {}))
        self.clients[name] = client

        def on_state(old: ConnectionState, new: ConnectionState) -> None:
            if new is ConnectionState.RECONNECTING:
                out({"type": "disconnect", "id": name, "reason": "transport lost"})
            elif new is ConnectionState.CONNECTED and old is ConnectionState.RECONNECTING:
                out({"type": "connect", "id": name, "sid": client.sid(),
                     "recovered": client.recovered})

        client.on_state(on_state)
        client.on_message(lambda m: out({"type": "event", "id": name,
                                         "event": "message:received", "args": [m]}))
        try:
            await client.connect()
        except SwitchboardError as refused:
            out({"type": "connect_error", "id": name, "message": str(refused), "data": None})
            return
        out({"type": "connect", "id": name, "sid": client.sid(), "recovered": False})

    async def emit(self, cmd: dict[str, Any]) -> None:
        client, payload = self.clients[cmd["id"]], cmd["args"][0]
        try:
            if cmd["event"] == "room:join":
                answer = await client.join(payload["room"])
            elif cmd["event"] == "message:send":
                answer = await client.send(payload["room"], payload["text"], id=payload["id"])
            else:
                answer = await client.emit_with_ack(cmd["event"], *cmd["args"])
        except RequestFailed as failed:
            answer = failure(failed.code, failed.message)
        except SwitchboardError as lost:
            answer = failure(type(lost).__name__, str(lost))
        if "ack" in cmd:
            out({"type": "ack", "id": cmd["id"], "ack": cmd["ack"], "args": [answer]})

    async def handle(self, cmd: dict[str, Any]) -> bool:
        op = cmd["op"]
        if op in ("emit", "close") and cmd["id"] not in self.clients:
            out({"type": "failure", "id": cmd["id"], "message": f"no client {cmd['id']}"})
        elif op == "connect":
            self.spawn(self.connect(cmd))
        elif op == "emit":
            self.spawn(self.emit(cmd))
        elif op == "close":
            client = self.clients[cmd["id"]]
            out({"type": "counters", "id": cmd["id"], "counters": client.counters.snapshot()})
            await client.close()
        return op != "exit"

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for client in self.clients.values():
            await client.close()


async def serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=16 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    peers = Peers()
    try:
        while line := await reader.readline():
            if line.strip() and not await peers.handle(json.loads(line)):
                break
    finally:
        await peers.close()


if __name__ == "__main__":
    asyncio.run(serve())
