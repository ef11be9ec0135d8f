"""Drive the real socket.io-client (node, ``tests/js/remote.mjs``) from async tests.

Tests read like the protocol: ``await js.connect("a", url, "/chat", token)``,
``ack = await js.call("a", "room:join", {"room": "room:x"})``,
``event = await js.expect_event("b", "message:received")``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

from tests.support.timing import UNIT

JS_DIR = Path(__file__).resolve().parents[1] / "js"


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if isinstance(value, dict):
        if set(value) == {"$bin"}:
            return base64.b64decode(value["$bin"])
        return {key: _decode(item) for key, item in value.items()}
    return value


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$bin": base64.b64encode(value).decode()}
    if isinstance(value, list | tuple):
        return [_encode(item) for item in value]
    if isinstance(value, dict):
        return {key: _encode(item) for key, item in value.items()}
    return value


class JsClients:
    """One node process holding any number of socket.io-client sockets."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self._queues: dict[str, list[dict[str, Any]]] = {}
        self._arrived = asyncio.Condition()
        self._acks: dict[tuple[str, int], asyncio.Future[list[Any]]] = {}
        self._next_ack = 0
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls) -> JsClients:
        node = shutil.which("node")
        assert node, "node is required for the socket.io-client tests"
        proc = await asyncio.create_subprocess_exec(
            node, str(JS_DIR / "remote.mjs"), cwd=JS_DIR,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=16 * 1024 * 1024,
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self._proc.stdout is not None
        async for line in self._proc.stdout:
            msg = _decode(json.loads(line))
            if msg["type"] == "ack":
                future = self._acks.pop((msg["id"], msg["ack"]), None)
                if future is not None and not future.done():
                    future.set_result(msg["args"])
            else:
                self._queue(msg["id"]).append(msg)
                async with self._arrived:
                    self._arrived.notify_all()

    def _queue(self, client: str) -> list[dict[str, Any]]:
        return self._queues.setdefault(client, [])

    async def _send(self, cmd: dict[str, Any]) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(_encode(cmd)).encode() + b"\n")
        await self._proc.stdin.drain()

    async def connect(self, client: str, url: str, nsp: str, token: str | None = None,
                      **opts: Any) -> dict[str, Any]:
        """Connect and return the first connect / connect_error report."""
        options: dict[str, Any] = {"transports": ["websocket"], "reconnection": False, **opts}
        if token is not None:
            options.setdefault("auth", {"token": token})
        await self._send({"op": "connect", "id": client, "url": url, "nsp": nsp,
                          "opts": options})
        return await self.expect(client, {"connect", "connect_error"})

    async def emit(self, client: str, event: str, *args: Any) -> None:
        await self._send({"op": "emit", "id": client, "event": event, "args": list(args)})

    async def call(self, client: str, event: str, *args: Any,
                   within: float = 5 * UNIT) -> Any:
        """Emit with an ack callback and return the ack's first argument."""
        self._next_ack += 1
        tag = self._next_ack
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._acks[(client, tag)] = future
        await self._send({"op": "emit", "id": client, "event": event, "args": list(args),
                          "ack": tag})
        reply = await asyncio.wait_for(future, within)
        return reply[0] if reply else None

    async def _take(self, client: str, match: Any, within: float) -> dict[str, Any]:
        """The first report of ``client`` that ``match`` accepts; others stay queued in order."""
        queue = self._queue(client)
        async with asyncio.timeout(within), self._arrived:
            while True:
                for index, msg in enumerate(queue):
                    if match(msg):
                        return queue.pop(index)
                await self._arrived.wait()

    async def expect(self, client: str, types: set[str],
                     within: float = 5 * UNIT) -> dict[str, Any]:
        return await self._take(client, lambda msg: msg["type"] in types, within)

    async def expect_event(self, client: str, event: str,
                           within: float = 5 * UNIT) -> list[Any]:
        msg = await self._take(
            client, lambda m: m["type"] == "event" and m["event"] == event, within)
        return list(msg["args"])

    def pending(self, client: str) -> list[dict[str, Any]]:
        queue = self._queue(client)
        items, queue[:] = list(queue), []
        return items

    async def close(self, client: str) -> None:
        await self._send({"op": "close", "id": client})

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self._send({"op": "exit"})
        try:
            await asyncio.wait_for(self._proc.wait(), 5)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
