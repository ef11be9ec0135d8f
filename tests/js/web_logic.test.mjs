// The demo page's logic without a DOM (web/connection_state.js, room_log.js, rooms.js,
// typing.js), under node's own test runner: tests/unit/test_web_logic.py runs this file.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  explainConnectError,
  explainDisconnect,
  gatewayOf,
  nominalDelayMs,
  statusText,
} from "../../web/connection_state.js";
import { fillRequest, HISTORY_PAGE, pageIsFull, RoomLog } from "../../web/room_log.js";
import { joinHint, loadSaved, normaliseRoom, save } from "../../web/rooms.js";
import { typingText } from "../../web/typing.js";

const RANDOM = "AbCdEfGhIjKlMnOpQrStUv"; // 22 characters, as token_urlsafe(16) makes

test("the gateway is read from the sid's suffix, token-decoded", () => {
  assert.equal(gatewayOf(`${RANDOM}~gw-1`), "gw-1");
  assert.equal(gatewayOf(`${RANDOM}~caf=C3=A9=2Eeu`), "café.eu");
  for (const sid of [undefined, 5, "", RANDOM, `${RANDOM}~`, `short~gw-1`, `${RANDOM}~a.b`,
    `${RANDOM}~=ZZ`, `${RANDOM}~=FF`]) {
    assert.equal(gatewayOf(sid), null, String(sid));
  }
});

test("the next try is socket.io-client's nominal backoff", () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map((n) => nominalDelayMs(n, 1000, 5000)),
    [1000, 2000, 4000, 5000, 5000, 5000, 5000]);
});

test("a failed connection says why in words", () => {
  assert.match(explainConnectError({ message: "unauthorized", data: { code: "unauthorized" } }),
    /refused the token/);
  assert.match(explainConnectError({ message: "xhr poll error", description: 0 }),
    /long-polling request failed.*gateway is down or the network is offline/);
  assert.match(explainConnectError({ message: "xhr poll error", description: 502 }), /HTTP 502/);
  assert.match(explainConnectError({ message: "websocket error" }), /WebSocket could not be opened/);
  assert.match(explainConnectError({ message: "Invalid namespace" }), /does not serve \/chat/);
  assert.equal(explainConnectError({ message: "over the limit", data: { code: "rate_limited" } }),
    "over the limit [rate_limited]");
  assert.equal(explainConnectError(undefined), "unknown error");
  assert.equal(explainDisconnect("ping timeout"), "no heartbeat from the gateway");
  assert.equal(explainDisconnect("transport close"), "the connection was closed");
  assert.equal(explainDisconnect("something new"), "something new");
});

test("the status line names the phase, the gateway, the attempt and the wait", () => {
  assert.equal(statusText({ phase: "connecting", url: "http://lb" }), "connecting to http://lb…");
  assert.equal(statusText({ phase: "connected", gateway: "gw-2", transport: "websocket", recovered: true }),
    "connected to gateway gw-2 over websocket (session recovered)");
  assert.equal(statusText({ phase: "connected", gateway: "gw-1", recovered: false }),
    "connected to gateway gw-1 (fresh session)");
  assert.equal(statusText({ phase: "reconnecting", attempt: 3, nextInMs: 3400, why: "the connection was closed" }),
    "reconnecting (attempt 3, next try in 4 s) — the connection was closed");
  assert.equal(statusText({ phase: "reconnecting", attempt: 1, nextInMs: 0 }),
    "reconnecting (attempt 1, trying now)");
  assert.equal(statusText({ phase: "disconnected", why: "you disconnected" }), "disconnected: you disconnected");
  assert.equal(statusText({ phase: "disconnected" }), "disconnected");
});

const message = (seq, prev, live = true) => [{ seq, prev, room: "room:a", text: `m${seq}` }, live];

test("a room log keeps messages by seq, once, and counts live duplicates", () => {
  const log = new RoomLog();
  assert.deepEqual(log.add(...message(5, 0)), { added: true, next: null, gapSince: null });
  assert.deepEqual(log.add(...message(3, 0, false)), { added: true, next: 5, gapSince: null });
  assert.deepEqual(log.add(...message(5, 3, false)), { added: false });
  assert.equal(log.duplicates, 0, "history overlapping live delivery is no duplicate");
  assert.deepEqual(log.add(...message(5, 3)), { added: false });
  assert.equal(log.duplicates, 1);
  assert.deepEqual(log.ordered().map((m) => m.seq), [3, 5]);
  assert.equal(log.last, 5);
  for (const seq of [0, -1, 1.5, "7", undefined]) {
    assert.equal(log.add({ seq, prev: 0 }, true).added, false);
  }
});

test("a prev beyond the last seq held is a gap to fill from that seq", () => {
  const log = new RoomLog();
  log.add(...message(2, 0));
  assert.equal(log.add(...message(4, 2)).gapSince, null);
  assert.equal(log.add(...message(9, 7)).gapSince, 4);
  assert.equal(log.gaps, 1);
  assert.equal(log.add(...message(7, 4, false)).gapSince, null, "history never opens a gap");
  assert.equal(new RoomLog().add(...message(12, 11)).gapSince, null, "an empty log loads history instead");
  assert.deepEqual(fillRequest("room:a", 4), { room: "room:a", since: 4, limit: HISTORY_PAGE });
  assert.equal(pageIsFull({ messages: new Array(HISTORY_PAGE).fill({}) }), true);
  assert.equal(pageIsFull({ messages: [{}] }), false);
  assert.equal(pageIsFull({ ok: false }), false);
});

test("a bare room name gets the room: prefix, and the page says so", () => {
  assert.deepEqual(normaliseRoom("lobby"), { room: "room:lobby", hint: "rooms are named room:<name>: joining room:lobby" });
  assert.deepEqual(normaliseRoom("  room:lobby "), { room: "room:lobby" });
  assert.deepEqual(normaliseRoom("team:x"), { room: "team:x" });
  assert.match(normaliseRoom("").error, /e\.g\. room:lobby/);
  assert.match(normaliseRoom("no spaces").error, /letters, digits/);
  assert.match(normaliseRoom("x".repeat(124)).error, /at most 128/);
  assert.match(joinHint("team:x", "forbidden"), /room:\* rooms only: try room:x/);
  assert.equal(joinHint("room:x", "forbidden"), "");
  assert.match(joinHint("room:x", "rate_limited"), /wait a moment/);
});

test("what a reload remembers survives only when it is readable", () => {
  const store = new Map();
  const storage = { getItem: (k) => store.get(k) ?? null, setItem: (k, v) => store.set(k, v) };
  assert.deepEqual(loadSaved(storage), { name: "", rooms: [], active: null, connected: false });
  save(storage, { name: "ann", rooms: ["room:a", "room:b"], active: "room:b", connected: true });
  assert.deepEqual(loadSaved(storage), { name: "ann", rooms: ["room:a", "room:b"], active: "room:b", connected: true });
  save(storage, { name: "ann", rooms: ["room:a", "bad name", 7], active: "bad name", connected: "yes" });
  assert.deepEqual(loadSaved(storage), { name: "ann", rooms: ["room:a"], active: "room:a", connected: false });
  store.set("switchboard-demo", "{not json");
  assert.equal(loadSaved(storage).name, "");
  assert.equal(loadSaved(undefined).name, "");
  save({ setItem: () => { throw new Error("quota"); } }, {});
});

test("typing names the first typists and counts the rest", () => {
  assert.equal(typingText([]), "");
  assert.equal(typingText(["a"]), "a is typing…");
  assert.equal(typingText(["a", "b"]), "a and b are typing…");
  assert.equal(typingText(["a", "b", "c"]), "a, b and c are typing…");
  assert.equal(typingText(["a", "b", "c", "d", "e"]), "a, b and 3 others are typing…");
});
