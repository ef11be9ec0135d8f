"""The cluster-wide per-user connection limit: exact under concurrent handshakes on two
gateways, freed on disconnect and when a gateway dies."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.support.jsclient import JsClients
from tests.support.processes import Service
from tests.support.timing import UNIT
from tests.support.tokens import make_token

pytestmark = pytest.mark.integration

REFUSAL = {"message": "too many connections", "data": {"code": "too_many_connections"}}


async def connect_many(js: JsClients, user: str, names: list[str],
                       gateways: list[Service]) -> list[dict[str, object]]:
    token = make_token(user)
    return list(await asyncio.gather(*[
        js.connect(name, gateways[i % len(gateways)].url, "/chat", token)
        for i, name in enumerate(names)]))


async def test_twenty_concurrent_connects_of_one_user_admit_exactly_five(
    js: JsClients, gateway_pair: list[Service]
) -> None:
    for round_ in range(10):
        names = [f"lim{round_}-{i}" for i in range(20)]
        replies = await connect_many(js, f"limited-{round_}", names, gateway_pair)
        admitted = [r for r in replies if r["type"] == "connect"]
        refused = [r for r in replies if r["type"] == "connect_error"]
        assert len(admitted) == 5, round_
        assert len(refused) == 15
        assert all({"message": r["message"], "data": r["data"]} == REFUSAL for r in refused)
        for name in names:
            await js.close(name)


async def test_a_slot_frees_when_a_connection_closes(
    js: JsClients, gateway_pair: list[Service]
) -> None:
    names = [f"free-{i}" for i in range(5)]
    replies = await connect_many(js, "freer", names, gateway_pair)
    assert all(r["type"] == "connect" for r in replies)
    assert (await js.connect("free-extra", gateway_pair[0].url, "/chat",
                             make_token("freer")))["type"] == "connect_error"
    await js.close("free-0")
    async with asyncio.timeout(10 * UNIT):
        while True:
            reply = await js.connect(f"free-retry-{asyncio.get_running_loop().time()}",
                                     gateway_pair[1].url, "/chat", make_token("freer"))
            if reply["type"] == "connect":
                break
            await asyncio.sleep(0.1)


async def test_a_dead_gateways_connections_stop_counting(
    js: JsClients, start_gateway: Callable[..., Service], gateway_pair: list[Service]
) -> None:
    doomed = start_gateway()
    replies = await connect_many(js, "orphan", [f"orph-{i}" for i in range(5)], [doomed])
    assert all(r["type"] == "connect" for r in replies)
    survivor = gateway_pair[0]
    assert (await js.connect("orph-early", survivor.url, "/chat",
                             make_token("orphan")))["type"] == "connect_error"
    doomed.kill()
    attempt = 0
    async with asyncio.timeout(15 * UNIT):  # the gateway's liveness key lapses (3 s TTL)
        while True:
            attempt += 1
            reply = await js.connect(f"orph-late-{attempt}", survivor.url, "/chat",
                                     make_token("orphan"))
            if reply["type"] == "connect":
                break
            await asyncio.sleep(0.25)


async def test_a_gateway_restarted_under_its_id_does_not_bring_back_its_dead_runs_slots(
    js: JsClients, start_gateway: Callable[..., Service]
) -> None:
    # Its own prefix and a long liveness TTL: the dead run's key cannot lapse during the test,
    # so only the boot id tells the runs apart.
    env = {"SB_SUBJECT_PREFIX": f"reborn{id(js)}", "SB_GATEWAY_TTL_S": "60",
           "SB_INSTANCE_ID": "gw-reborn"}
    first = start_gateway(**env)
    replies = await connect_many(js, "phoenix", [f"phx-{i}" for i in range(5)], [first])
    assert all(r["type"] == "connect" for r in replies)
    assert (await js.connect("phx-over", first.url, "/chat",
                             make_token("phoenix")))["type"] == "connect_error"
    first.kill()
    second = start_gateway(**env)
    reply = await js.connect("phx-again", second.url, "/chat", make_token("phoenix"))
    assert reply["type"] == "connect", reply
