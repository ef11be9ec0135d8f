"""A gateway holds a room's NATS subscription exactly while it has local members, and no
room name can widen what it subscribes (read back from nats-server's own /connz)."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable

import pytest

from devcluster.natsserver import NatsServer
from tests.support.jsclient import JsClients
from tests.support.processes import Service
from tests.support.timing import UNIT
from tests.support.tokens import make_token

pytestmark = pytest.mark.integration


def gateway_subjects(nats: NatsServer, gateway: Service) -> set[str]:
    with urllib.request.urlopen(nats.monitor_url + "/connz?subs=1&limit=1000",
                                timeout=5) as answer:
        connz = json.load(answer)
    name = "gateway-" + gateway.env["SB_INSTANCE_ID"]
    (conn,) = [c for c in connz["connections"] if c.get("name") == name]
    return set(conn.get("subscriptions_list", []))


async def until(predicate: Callable[[], bool], within: float = 5 * UNIT) -> None:
    """Poll nats-server's monitor (it has no push API) until ``predicate`` holds."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)



async def test_room_subscription_follows_local_membership(
    js: JsClients, nats_server: NatsServer, gateway_pair: list[Service]
) -> None:
    gateway = gateway_pair[0]
    room_subject = "sb.fan.chat.room=3Asubs"
    user_subject = "sb.fan.chat.user=3Asubs-user"
    await js.connect("a", gateway.url, "/chat", make_token("subs-user"))
    await js.connect("b", gateway.url, "/chat", make_token("subs-user-2"))
    assert user_subject in gateway_subjects(nats_server, gateway)
    assert room_subject not in gateway_subjects(nats_server, gateway)

    await js.call("a", "room:join", {"room": "room:subs"})
    await js.call("b", "room:join", {"room": "room:subs"})
    subjects = gateway_subjects(nats_server, gateway)
    assert room_subject in subjects
    assert not any(s.endswith((">", "*")) for s in subjects if s.startswith("sb."))

    await js.call("a", "room:leave", {"room": "room:subs"})
    assert room_subject in gateway_subjects(nats_server, gateway)
    await js.close("b")
    await until(lambda: room_subject not in gateway_subjects(nats_server, gateway))
    await until(lambda: "sb.fan.chat.user=3Asubs-user-2" not in
                gateway_subjects(nats_server, gateway))


async def test_sockets_subscribing_new_rooms_in_one_burst_all_stay_connected(
    js: JsClients, nats_server: NatsServer, gateway_pair: list[Service]
) -> None:
    """Subscriptions that start together (one ordering barrier serves them all) each wait for
    it on their own: every socket is connected, every join acked and subscribed, none closed."""
    gateway = gateway_pair[0]
    names = [f"burst-{i}" for i in range(20)]
    replies = await asyncio.gather(*(
        js.connect(name, gateway.url, "/live-updates", make_token(f"burst-user-{i}"))
        for i, name in enumerate(names)))
    assert [r["type"] for r in replies] == ["connect"] * len(names)
    acks = await asyncio.gather(*(js.call(name, "room:join", {"room": f"room:burst-{i}"})
                                  for i, name in enumerate(names)))

    assert [a["ok"] for a in acks] == [True] * len(names)
    subjects = gateway_subjects(nats_server, gateway)
    assert all(f"sb.fan.live-updates.room=3Aburst-{i}" in subjects for i in range(len(names)))
    for name in names:
        assert not [m for m in js.pending(name) if m["type"] != "event"]
