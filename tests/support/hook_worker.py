"""A raw nats-py application worker, written against the hook wire contract only, for tests
that need one in a process of its own (to SIGKILL it).

``python -m tests.support.hook_worker NATS_URL PREFIX NAME MODE`` answers every event of
every namespace in queue group ``app``: MODE ``answer`` acks ``[{"worker": NAME, "id": id}]``,
``hold`` never answers. Each request received prints ``got <id>`` (flushed), and ``ready``
once subscribed.
"""

from __future__ import annotations

import asyncio
import sys

import nats
import orjson
from nats.aio.msg import Msg


async def main(url: str, prefix: str, name: str, mode: str) -> None:
    nc = await nats.connect(url)

    async def on_event(msg: Msg) -> None:
        request = orjson.loads(msg.data)
        print("got", request["id"], flush=True)
        if mode == "answer":
            await msg.respond(orjson.dumps({"ok": True, "ack": [{"worker": name,
                                                                 "id": request["id"]}]}))

    await nc.subscribe(f"{prefix}.hook.*.event.*", queue="app", cb=on_event)
    await nc.flush()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
