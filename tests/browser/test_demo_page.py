"""The demo page in a real browser (Debian's Chromium driven by Playwright) against a real
devcluster: two people chatting across gateways, presence and typing, XSS payloads shown as
text, history on join and after a reload, a missed message filled by ``seq``, a refused
connection saying why, and the two ways a connection dies — the browser going
offline for longer than a heartbeat, and the page's gateway SIGKILLed — each ending in a
recovered session with every message once, in order, and no left/joined noise.

One cluster and one browser serve the whole module (each test has its own room and names);
the SIGKILL test runs last. Skipped, with the reason, without Playwright or Chromium.
"""

from __future__ import annotations

import os
import re
import signal
import uuid
from collections.abc import Iterator

import pytest

pytest.importorskip("playwright.sync_api",
                    reason="playwright is not installed (pip install -e '.[test]')")

from playwright.sync_api import Browser, WebSocketRoute, sync_playwright

from tests.browser.demo_page import CHROMIUM, HEARTBEAT_S, WAIT_MS, Chat, Cluster, start_cluster
from tests.integration.test_devcluster import alive

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"{CHROMIUM} is missing (scripts/test installs it as root: "
                              "apt-get install chromium)"),
]
NOISE = re.compile(r" (joined|left)$")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = start_cluster(tmp_path_factory.mktemp("browser-devcluster"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # Root in a container: Chromium's sandbox needs namespaces we may not have.
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                              args=["--no-sandbox", "--disable-gpu"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def open_chat(browser: Browser, cluster: Cluster) -> Iterator[Iterator[Chat]]:
    """Pages for one test, closed whatever it did."""
    opened: list[Chat] = []

    def pages() -> Iterator[Chat]:
        while True:
            chat = Chat.open(browser, cluster.demo)
            opened.append(chat)
            yield chat

    try:
        yield pages()
    finally:
        for chat in opened:
            chat.close()


def names() -> tuple[str, str, str]:
    """A room and two people of this test only."""
    tag = uuid.uuid4().hex[:8]
    return f"room:{tag}", f"ann-{tag}", f"bob-{tag}"


def pair(open_chat: Iterator[Chat], cluster: Cluster) -> tuple[Chat, Chat, str, str]:
    """Ann through the balancer; Bob straight to the gateway not holding Ann's session, so
    they never share one. -> (ann, bob, room, Ann's gateway)."""
    room, ann_name, bob_name = names()
    ann, bob = next(open_chat), next(open_chat)
    ann.connect(ann_name, room)
    ann.settle()
    holder = cluster.holder(ann_name)
    bob.connect(bob_name, room, gateway=2 if holder == "gw-1" else 1)
    assert cluster.holder(bob_name) != holder
    ann.page.wait_for_selector(f'#members li:text-is("{bob_name}")', timeout=WAIT_MS)
    return ann, bob, room, holder


def test_two_pages_chat_across_gateways(open_chat: Iterator[Chat], cluster: Cluster) -> None:
    ann, bob, room, _ = pair(open_chat, cluster)
    lb = str(cluster.ready["lb"]).removeprefix("http://")
    first, *_ = ann.engine_urls
    assert first.startswith(f"http://{lb}/socket.io/?EIO=4&transport=polling"), first
    assert any(url.startswith(f"ws://{lb}/socket.io/?EIO=4&transport=websocket&sid=")
               for url in ann.engine_urls), "socket.io-client's defaults: polling, then upgrade"
    assert re.fullmatch(r"connected to gateway gw-\d over (polling|websocket) \(fresh session\)",
                        ann.status_text()), ann.status_text()
    assert ann.phases() == ["disconnected", "connecting", "connected"]
    ann.send("hello from ann")
    bob.send("hello from bob")
    expected = ["hello from ann", "hello from bob"]
    assert ann.wait_texts(room, 2) == bob.wait_texts(room, 2) == expected
    assert ann.messages(room) == bob.messages(room), "one order, by seq, on both pages"
    assert ann.page.locator("#rooms li").all_inner_texts()[0].startswith(room)


def test_a_bare_room_name_is_prefixed_and_said_so(open_chat: Iterator[Chat]) -> None:
    room, ann_name, _ = names()
    ann = next(open_chat)
    ann.connect(ann_name, room)
    bare = room.removeprefix("room:") + "-extra"
    ann.page.fill("#room", bare)
    ann.page.click("#room-form button")
    ann.page.wait_for_selector(f"#logs li.system:has-text('joining room:{bare}')",
                               timeout=WAIT_MS)  # visible: in the log now on screen
    assert ann.page.locator("#rooms li").evaluate_all("l => l.map(li => li.dataset.room)") == [
        room, f"room:{bare}"]
    ann.page.fill("#room", "no spaces")
    ann.page.click("#room-form button")
    ann.page.wait_for_selector("#logs li.error:has-text('letters, digits')", timeout=WAIT_MS)


def test_a_refused_connection_says_why(open_chat: Iterator[Chat]) -> None:
    """A blank name gets no token; the gateway then refuses the connection for good."""
    chat = next(open_chat)
    chat.page.fill("#name", "   ")
    chat.page.click("#connect")
    chat.page.wait_for_selector('#status[data-phase="disconnected"]:has-text("refused")',
                                timeout=WAIT_MS)
    assert "refused the token" in chat.status_text(), chat.statuses()
    chat.page.wait_for_selector("#logs li.error:has-text('no token: name must be a non-blank')",
                                timeout=WAIT_MS)
    assert chat.phases()[1:] == ["connecting", "disconnected"]


def test_presence_and_typing(open_chat: Iterator[Chat], cluster: Cluster) -> None:
    ann, bob, _, _ = pair(open_chat, cluster)
    ann_name, bob_name = ann.page.input_value("#name"), bob.page.input_value("#name")
    bob.page.wait_for_selector(f'#members li:text-is("{ann_name}")', timeout=WAIT_MS)
    assert bob.page.locator("#members li.you").inner_text() == f"{bob_name} (you)"
    bob.page.type("#text", "typing", delay=20)
    ann.page.wait_for_selector(f'#typing:text-is("{bob_name} is typing…")', timeout=WAIT_MS)
    bob.page.fill("#text", "")
    bob.page.dispatch_event("#text", "input")
    ann.page.wait_for_selector("#typing:empty", timeout=WAIT_MS)
    assert not bob.stale()
    bob.page.click("#disconnect")
    assert bob.status() == "disconnected"
    assert bob.status_text() == "disconnected: you disconnected"
    assert bob.stale(), "greyed while away"


PAYLOADS = ["<script>alert('script')</script>", "<img src=x onerror=alert('img')>",
            "\"><svg onload=alert('svg')>", "<iframe srcdoc=\"<script>alert(1)</script>\">"]


def test_xss_payloads_are_rendered_as_text(open_chat: Iterator[Chat]) -> None:
    room, _, _ = names()
    mallory, viewer = next(open_chat), next(open_chat)
    evil_name = "<img src=y onerror=alert('name')>"
    mallory.connect(evil_name, room)
    viewer.connect(f"viewer-{room[5:]}", room)
    for payload in PAYLOADS:
        mallory.send(payload)
    for chat in (mallory, viewer):
        assert chat.wait_texts(room, len(PAYLOADS)) == PAYLOADS
        assert {sender for _, sender, _ in chat.messages(room)} == {evil_name}
        assert chat.page.locator("#logs img, #logs script, #logs svg, #logs iframe, "
                                 "#members img").count() == 0
        assert chat.dialogs == []
    viewer.page.wait_for_selector(f'#members li:text-is("{evil_name}")', timeout=WAIT_MS)


def test_history_on_join_and_after_a_reload(open_chat: Iterator[Chat]) -> None:
    room, ann_name, bob_name = names()
    ann = next(open_chat)
    ann.connect(ann_name, room)
    for i in range(3):
        ann.send(f"before reload {i}")
    before = ann.messages(room)
    newcomer = next(open_chat)
    newcomer.connect(bob_name, room)
    assert newcomer.wait_texts(room, 3) == [f"before reload {i}" for i in range(3)]
    assert newcomer.messages(room) == before
    ann.reload()
    ann.wait_connected(recovered=False)
    assert ann.page.input_value("#name") == ann_name
    assert ann.wait_texts(room, 3) == [f"before reload {i}" for i in range(3)]
    assert ann.messages(room) == before


def test_a_missed_message_is_filled_by_seq(open_chat: Iterator[Chat]) -> None:
    """A message:received frame dropped on its way to the page (Playwright routes the page's
    WebSocket): the next message's ``prev`` names the gap, and the page fills it from
    ``room:history``, in place."""
    room, ann_name, bob_name = names()
    ann, bob = next(open_chat), next(open_chat)
    dropped: list[str] = []

    def route(page_side: WebSocketRoute) -> None:
        server = page_side.connect_to_server()
        page_side.on_message(server.send)

        def to_page(frame: str | bytes) -> None:
            if isinstance(frame, str) and "lost on the way" in frame and not dropped:
                dropped.append(frame)
            else:
                page_side.send(frame)

        server.on_message(to_page)

    ann.page.route_web_socket(re.compile(r"/socket\.io/"), route)
    ann.reload()  # socket.io-client takes the WebSocket constructor when it loads
    ann.connect(ann_name, room, gateway=1)  # one gateway: the upgrade needs no takeover
    ann.page.wait_for_selector("#status:has-text('over websocket')", timeout=WAIT_MS)
    bob.connect(bob_name, room, gateway=2)
    texts = ["first", "lost on the way", "after the loss"]
    for text in texts:
        bob.send(text)
    assert ann.wait_texts(room, 3) == texts
    assert len(dropped) == 1
    assert ann.log_counter(room, "gaps") == "1"
    assert ann.log_counter(room, "duplicates") == "0"
    assert ann.messages(room) == bob.messages(room)


def assert_whole_and_quiet(chats: tuple[Chat, Chat], room: str, expected: list[str],
                           noise_before: list[int]) -> None:
    for chat, before in zip(chats, noise_before, strict=True):
        messages = chat.messages(room)
        assert [text for _, _, text in messages] == expected, "every message once, in order"
        assert [seq for seq, _, _ in messages] == sorted({seq for seq, _, _ in messages})
        assert chat.log_counter(room, "duplicates") == "0"
        noise = [n for n in chat.notices(room) if NOISE.search(n)]
        assert len(noise) == before, f"left/joined noise: {noise[before:]}"


def noise_counts(chats: tuple[Chat, Chat], room: str) -> list[int]:
    return [len([n for n in chat.notices(room) if NOISE.search(n)]) for chat in chats]


def test_offline_for_longer_than_a_heartbeat_then_recovered(open_chat: Iterator[Chat],
                                                            cluster: Cluster) -> None:
    ann, bob, room, _ = pair(open_chat, cluster)
    ann.send("before the cut")
    ann.wait_texts(room, 1)
    quiet = noise_counts((ann, bob), room)
    ann.context.set_offline(True)
    ann.wait_phase("reconnecting")
    assert ann.stale(), "members greyed while disconnected"
    during = [f"while ann is offline {i}" for i in range(4)]
    for text in during:
        bob.send(text)
    ann.page.wait_for_timeout(2 * HEARTBEAT_S * 1000)
    ann.context.set_offline(False)
    ann.wait_connected(recovered=True)
    expected = ["before the cut", *during]
    assert ann.wait_texts(room, len(expected)) == expected
    assert any(re.search(r"reconnecting \(attempt \d+, (next try in \d+ s|trying now)\) — \w",
                         s) for s in ann.statuses()), "attempt, wait and why"
    ann.send("after the cut")
    bob.wait_texts(room, len(expected) + 1)
    assert_whole_and_quiet((ann, bob), room, [*expected, "after the cut"], quiet)
    assert not ann.stale()


def test_the_page_names_the_gateway_holding_its_session(open_chat: Iterator[Chat],
                                                         cluster: Cluster) -> None:
    """Through the balancer an upgrade may move the session off the gateway its sid names;
    in development the page asks the registry (``/dev/where``), so it names the holder."""
    room, name, _ = names()
    for i in range(3):
        chat = next(open_chat)
        chat.connect(f"{name}-{i}", room)
        chat.settle()
        holder = cluster.holder(f"{name}-{i}")
        where = chat.page.evaluate("(q) => fetch(`dev/where?${q}`).then((r) => r.json())",
                                   f"user={name}-{i}&sid=x")
        if not where["registry"]:
            pytest.skip("devcluster does not give the demo server the router (DemoConfig.router "
                        "and api_key), so the page can only name the gateway of its sid")
        chat.page.wait_for_selector(f'#status[data-gateway="{holder}"]', state="attached",
                                    timeout=WAIT_MS)


def test_the_kill_my_gateway_button(open_chat: Iterator[Chat], cluster: Cluster) -> None:
    """Development only: the page names its gateway's pid and kills it for the person. Straight
    to gateway 1, the page waits for devcluster to restart it, then recovers there."""
    room, ann_name, _ = names()
    ann = next(open_chat)
    ann.connect(ann_name, room, gateway=1)
    pid = cluster.pid_of("gw-1")
    ann.page.wait_for_selector("#kill:text-is('Kill my gateway (gw-1)')", timeout=WAIT_MS)
    assert f"kill -9 {pid}" in ann.page.inner_text("#kill-hint")
    ann.page.click("#kill")
    ann.page.wait_for_selector(f"#logs li.system:has-text('killed gateway gw-1 (pid {pid})')",
                               timeout=WAIT_MS)
    ann.wait_connected(recovered=True)
    assert ann.phases()[2:] == ["connected", "reconnecting", "connected"], ann.statuses()
    assert not alive(pid)
    assert cluster.pid_of("gw-1") != pid, "devcluster restarted gw-1 under its name"


def test_sigkilled_gateway_then_recovered_elsewhere(open_chat: Iterator[Chat],
                                                    cluster: Cluster) -> None:
    ann, bob, room, gateway = pair(open_chat, cluster)
    ann.send("before the kill")
    ann.wait_texts(room, 1)
    quiet = noise_counts((ann, bob), room)
    os.kill(cluster.pid_of(gateway), signal.SIGKILL)
    during = [f"while {gateway} is dead {i}" for i in range(4)]
    for text in during:
        bob.send(text)
    ann.wait_connected(recovered=True)
    expected = ["before the kill", *during]
    assert ann.wait_texts(room, len(expected)) == expected
    assert ann.phases()[2:] == ["connected", "reconnecting", "connected"], ann.statuses()
    ann.send("after the kill")
    bob.wait_texts(room, len(expected) + 1)
    assert_whole_and_quiet((ann, bob), room, [*expected, "after the kill"], quiet)


