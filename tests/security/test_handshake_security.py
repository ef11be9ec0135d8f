"""The handshake and the edges around it, against a live gateway: bad, expired, ``alg: none``
and foreign-key tokens on the upgrade (401) and in CONNECT (CONNECT_ERROR ``unauthorized``),
the Origin allow-list (403), subject-injection room names (``bad_request``, and no NATS
subscription appears), oversize frames (1009) and a client that never answers pings (4000
after two misses)."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
import urllib.request
import warnings
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from devcluster.natsserver import NatsServer
from tests.support.processes import Service
from tests.support.timing import UNIT
from tests.support.tokens import SECRET, make_token

pytestmark = pytest.mark.integration

PATH = "/socket.io/?EIO=4&transport=websocket"
UNAUTHORIZED = '44/chat,{"message":"unauthorized","data":{"code":"unauthorized"}}'


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], sub: str = "mallory", **claims: Any) -> str:
    """A JWT built by hand with an empty signature (``alg: none`` and friends)."""
    payload = {"sub": sub, "exp": int(time.time()) + 3600, **claims}
    return (b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
            + ".")


def swapped_alg(alg: str) -> str:
    """A valid HS256 token whose header is rewritten to claim another algorithm."""
    _, payload, signature = make_token("mallory").split(".")
    return b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode()) + "." + payload + "." + (
        signature)


def signed(claims: dict[str, Any]) -> str:
    """Signed with the gateway's own key, with exactly these claims."""
    return jwt.encode(claims, SECRET, algorithm="HS256")


def hs512() -> str:
    """Signed with the right key, but by an algorithm the gateway does not allow."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyjwt: our test key is short for SHA-512
        return make_token("mallory", alg="HS512")


BAD_TOKENS = {
    "garbage": "not-a-jwt",
    "empty": "",
    "expired": make_token("mallory", ttl=-3600),
    "alg none": unsigned({"alg": "none", "typ": "JWT"}),
    "alg None": unsigned({"alg": "None", "typ": "JWT"}),
    "alg NONE": unsigned({"alg": "NONE"}),
    "alg none, HS256 signature kept": swapped_alg("none"),
    "HS256 with empty signature": unsigned({"alg": "HS256", "typ": "JWT"}),
    "alg not allowed (HS512, right key)": hs512(),
    "another key": make_token("mallory", secret="k" * 40),
    "sub of 129 characters": make_token("s" * 129),
    "empty sub": make_token(""),
    "no exp": signed({"sub": "mallory"}),
    "no sub": signed({"exp": int(time.time()) + 3600}),
    "sub not a string": signed({"sub": 7, "exp": int(time.time()) + 3600}),
    "rooms not a list": make_token("mallory", rooms="room:*"),
    "signature of another token": make_token("mallory").rsplit(".", 1)[0] + "." + (
        make_token("other").rsplit(".", 1)[1]),
}


async def recv_text(ws: ClientConnection) -> str:
    while True:
        frame = await asyncio.wait_for(ws.recv(), 5 * UNIT)
        assert isinstance(frame, str)
        if frame != "2":
            return frame


def metrics(gateway: Service) -> str:
    with urllib.request.urlopen(gateway.url + "/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def gauge(gateway: Service, name: str) -> float:
    match = re.search(rf"^{name} ([0-9.e+-]+)$", metrics(gateway), re.MULTILINE)
    assert match, name
    return float(match.group(1))


def gateway_subjects(nats: NatsServer, gateway: Service) -> set[str]:
    """What the gateway's NATS connection subscribes, read back from nats-server."""
    with urllib.request.urlopen(nats.monitor_url + "/connz?subs=1&limit=1000",
                                timeout=5) as answer:
        connz = json.load(answer)
    name = "gateway-" + gateway.env["SB_INSTANCE_ID"]
    (conn,) = [c for c in connz["connections"] if c.get("name") == name]
    return {s for s in conn.get("subscriptions_list", []) if not s.startswith("_INBOX.")}


# --- tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["query", "bearer"])
async def test_bad_tokens_on_the_upgrade_get_401(gateway_pair: list[Service],
                                                 where: str) -> None:
    gateway = gateway_pair[0]
    for name, token in BAD_TOKENS.items():
        if where == "query":
            target, headers = gateway.ws_url + PATH + "&token=" + token, {}
        else:
            target, headers = gateway.ws_url + PATH, {"Authorization": "Bearer " + token}
        with pytest.raises(InvalidStatus) as refused:
            await connect(target, additional_headers=headers, compression=None)
        assert refused.value.response.status_code == 401, name
    for scheme in ("Basic dXNlcjpwYXNz", "Bearer", "Token " + make_token("mallory")):
        with pytest.raises(InvalidStatus) as refused:
            await connect(gateway.ws_url + PATH, additional_headers={"Authorization": scheme})
        assert refused.value.response.status_code == 401, scheme
    log = gateway.log_path.read_text() if gateway.log_path else ""
    for token in BAD_TOKENS.values():
        if len(token) > 20:
            assert token not in log and token.split(".")[0] + "." not in log


async def test_bad_tokens_in_connect_get_unauthorized_and_a_good_one_still_connects(
    gateway_pair: list[Service],
) -> None:
    async with connect(gateway_pair[0].ws_url + PATH, compression=None) as ws:
        await recv_text(ws)
        auths: list[Any] = [{"token": token} for token in BAD_TOKENS.values()]
        auths += [{"token": "a" * 9000}, {"token": 42}, {"token": ["x"]},
                  {"token": {"alg": "none"}}, {"token": None}, {},
                  {"pid": "p", "offset": "1"}]
        for auth in auths:
            await ws.send("40/chat," + json.dumps(auth))
            assert await recv_text(ws) == UNAUTHORIZED, auth
        await ws.send("40/chat")  # no auth at all
        assert await recv_text(ws) == UNAUTHORIZED
        await ws.send("40/chat," + json.dumps({"token": make_token("s" * 128)}))
        assert (await recv_text(ws)).startswith('40/chat,{"sid":"')  # 128 is the limit


async def test_a_token_on_the_upgrade_does_not_rescue_a_bad_one_in_connect(
    gateway_pair: list[Service],
) -> None:
    async with connect(gateway_pair[0].ws_url + PATH + "&token=" + make_token("good"),
                       compression=None) as ws:
        await recv_text(ws)
        await ws.send("40/chat," + json.dumps({"token": BAD_TOKENS["alg none"]}))
        assert await recv_text(ws) == UNAUTHORIZED
        await ws.send("40/chat,{}")
        assert (await recv_text(ws)).startswith('40/chat,{"sid":"')


# --- origin ---------------------------------------------------------------------------------


async def test_origin_allow_list(start_gateway: Callable[..., Service]) -> None:
    gateway = start_gateway(SB_ALLOWED_ORIGINS="https://chat.example")
    good = make_token("origin-user")
    for origin in ["https://evil.example", "null", "https://chat.example.evil.com",
                   "http://chat.example", "https://chat.example:8443", "https://chat.example/",
                   "https://CHAT.EXAMPLE", "https://chat.example, https://evil.example", "*"]:
        with pytest.raises(InvalidStatus) as refused:
            await connect(gateway.ws_url + PATH + "&token=" + good,
                          additional_headers={"Origin": origin})
        assert refused.value.response.status_code == 403, origin
    with pytest.raises(InvalidStatus) as refused:  # the origin is refused before the token
        await connect(gateway.ws_url + PATH + "&token=garbage",
                      additional_headers={"Origin": "https://evil.example"})
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as refused:
        await connect(gateway.ws_url + PATH + "&token=garbage",
                      additional_headers={"Origin": "https://chat.example"})
    assert refused.value.response.status_code == 401
    for headers in ({"Origin": "https://chat.example"}, {}):
        async with connect(gateway.ws_url + PATH + "&token=" + good,
                           additional_headers=headers) as ws:
            assert (await recv_text(ws)).startswith("0{")
            await ws.send("40/chat,")
            assert (await recv_text(ws)).startswith('40/chat,{"sid":"')


@pytest.mark.parametrize("headers", [
    [("Origin", "https://chat.example"), ("Origin", "https://evil.example")],
    [("Authorization", "Bearer " + make_token("dup")), ("Authorization", "Bearer x")],
], ids=["two Origin headers", "two Authorization headers"])
async def test_repeated_headers_get_a_4xx_not_a_crash(
    start_gateway: Callable[..., Service], headers: list[tuple[str, str]]
) -> None:
    gateway = start_gateway(SB_ALLOWED_ORIGINS="https://chat.example")
    with pytest.raises(InvalidStatus) as refused:
        await connect(gateway.ws_url + PATH, additional_headers=headers)
    status = refused.value.response.status_code
    await asyncio.sleep(0.1)
    assert 400 <= status < 500, status
    assert "Traceback" not in gateway.log_tail(60)


# --- subject injection ----------------------------------------------------------------------

INJECTION_NAMES = ["x.>", "*", ">", "a b", "a.b", "room:a.b", "room:*", "room:>", "room:a b",
                   "room:a\tb", "room:a\r\nSUB evil 1", "room:\u00e9", "", "r" * 129,
                   "room:x\x00", "$JS.API.>", "_INBOX.>", "sb.fan.chat.>", "room:a..b",
                   "room:a.*", "user:injector.>", "user:*", 42, None, ["room:a"]]


async def test_subject_injection_names_never_reach_nats(
    nats_server: NatsServer, start_gateway: Callable[..., Service]
) -> None:
    gateway = start_gateway(SB_REQUEST_RATE="100000", SB_REQUEST_BURST="100000",
                            SB_CHAT_RATE="100000", SB_CHAT_BURST="100000")
    async with connect(gateway.ws_url + PATH, compression=None) as ws:
        await recv_text(ws)
        await ws.send("40/chat," + json.dumps({"token": make_token("injector")}))
        assert (await recv_text(ws)).startswith('40/chat,{"sid":"')
        rooms_before = gauge(gateway, "switchboard_gateway_rooms")
        subjects_before = gateway_subjects(nats_server, gateway)
        assert rooms_before == 1  # its own user room
        ack = 0
        for name in INJECTION_NAMES:
            extras: list[tuple[str, dict[str, Any]]] = [
                ("room:join", {}), ("room:join", {"since": 0}),
                ("room:leave", {}), ("typing:start", {}), ("room:history", {}),
                ("room:presence", {}), ("message:send", {"text": "x", "id": "m"})]
            for event, extra in extras:
                ack += 1
                await ws.send(f"42/chat,{ack}" + json.dumps([event, {"room": name, **extra}]))
                answer = json.loads((await recv_text(ws))[len(f"43/chat,{ack}"):])[0]
                assert answer["ok"] is False and answer["error"]["code"] == "bad_request", (
                    name, event, answer)
        for name, code in [("user:other", "forbidden"), ("user:", "forbidden")]:
            ack += 1
            await ws.send(f"42/chat,{ack}" + json.dumps(["room:join", {"room": name}]))
            answer = json.loads((await recv_text(ws))[len(f"43/chat,{ack}"):])[0]
            assert answer["error"]["code"] == code, (name, answer)
        assert gauge(gateway, "switchboard_gateway_rooms") == rooms_before
        assert gateway_subjects(nats_server, gateway) == subjects_before
        assert not any(s.endswith((">", "*")) for s in subjects_before if s.startswith("sb."))

        # the measurement sees a real join: one more room, one more subscription
        await ws.send('42/chat,999["room:join",{"room":"room:control"}]')
        assert await recv_text(ws) == '43/chat,999[{"ok":true,"room":"room:control"}]'
        assert gauge(gateway, "switchboard_gateway_rooms") == rooms_before + 1
        assert gateway_subjects(nats_server, gateway) - subjects_before == {
            "sb.fan.chat.room=3Acontrol"}


# --- oversize frames ------------------------------------------------------------------------


async def open_chat(url: str, sub: str) -> ClientConnection:
    ws = await connect(url + PATH, compression=None, max_size=None)
    await recv_text(ws)
    await ws.send("40/chat," + json.dumps({"token": make_token(sub)}))
    assert (await recv_text(ws)).startswith('40/chat,{"sid":"')
    return ws


async def closed_code(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), 5 * UNIT)
    return closed.value.rcvd.code if closed.value.rcvd else None


def exactly(size: int, ack: int) -> str:
    """An event frame of exactly ``size`` bytes (an unknown event, so it gets an ack)."""
    head = f'42/chat,{ack}["nope","'
    return head + "x" * (size - len(head) - 2) + '"]'


async def test_oversize_frames_close_with_1009(gateway_pair: list[Service],
                                               start_gateway: Callable[..., Service]) -> None:
    small = start_gateway(SB_MAX_PAYLOAD="2048")
    async with connect(small.ws_url + PATH, compression=None) as ws:
        assert '"maxPayload":2048' in await recv_text(ws)
    ws = await open_chat(small.ws_url, "big")
    await ws.send(exactly(2048, 1))  # at the limit: answered
    assert (await recv_text(ws)).startswith('43/chat,1[{"ok":false,"error":{"code":'
                                            '"unknown_event"')
    await ws.close()
    cases: list[Any] = [exactly(2049, 2), b"\x00" * 2049, ["42/chat,3", "[" + "1," * 1100 + "1]"]]
    for frame in cases:
        ws = await open_chat(small.ws_url, "big")
        await ws.send(frame)
        assert await closed_code(ws) == 1009, type(frame)
    ws = await open_chat(gateway_pair[0].ws_url, "big")  # the default: 1,000,000 bytes
    await ws.send(exactly(1_000_001, 4))
    assert await closed_code(ws) == 1009
    ws = await open_chat(gateway_pair[0].ws_url, "big")
    await ws.send(exactly(1_000_000, 5))
    assert (await recv_text(ws)).startswith('43/chat,5[{"ok":false')
    await ws.close()


# --- heartbeat ------------------------------------------------------------------------------


async def test_a_client_that_never_answers_pings_is_closed_after_two_misses(
    start_gateway: Callable[..., Service],
) -> None:
    gateway = start_gateway(SB_PING_INTERVAL_MS="200", SB_PING_TIMEOUT_MS="100")
    ws = await connect(gateway.ws_url + PATH + "&token=" + make_token("silent"),
                       compression=None)
    opening = json.loads((await asyncio.wait_for(ws.recv(), 5 * UNIT))[1:])
    assert (opening["pingInterval"], opening["pingTimeout"]) == (200, 100)
    await ws.send("40/chat,")
    frames: list[str] = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:  # each wait is bounded by the configured cadence, not by a clock here
            frames.append(await asyncio.wait_for(ws.recv(), 5 * UNIT))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
    # ping, miss, ping, second miss: closed right after the second ping, never a third
    assert [frame for frame in frames if frame == "2"] == ["2", "2"]
    assert frames[-1] == "2"
    assert 'switchboard_gateway_closes_total{code="4000"} 1.0' in metrics(gateway)


async def test_one_pong_resets_the_misses_and_then_silence_closes(
    start_gateway: Callable[..., Service],
) -> None:
    # a wider timeout than above, so a loaded machine still gets its one pong in on time
    gateway = start_gateway(SB_PING_INTERVAL_MS="250", SB_PING_TIMEOUT_MS="200")
    ws = await open_chat(gateway.ws_url, "once")
    pings = 0
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            if await asyncio.wait_for(ws.recv(), 5 * UNIT) == "2":
                pings += 1
                if pings == 2:
                    await ws.send("3")  # answers the second ping only
                await ws.send('42/chat,["nope"]')  # traffic is not a pong
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
    assert pings == 4  # one miss, a pong, then two misses
