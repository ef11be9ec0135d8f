// Switchboard demo chat: the `/chat` namespace through the unmodified socket.io-client (the
// global `io` from socket.io.min.js, served from web/node_modules) with its default options:
// HTTP long-polling first, then the upgrade to WebSocket, through devcluster's load balancer.
//
// This module wires the page; the parts live beside it: connection_state.js (what the status
// line says), room_log.js and room_view.js (messages by seq, one log per room), members.js,
// typing.js, rooms.js (room names, what a reload remembers), dev_tools.js (kill my gateway).
// Everything a server or another user sent is rendered with textContent, never innerHTML.
//
// Exactly-once is the server's promise: after a transport close socket.io-client reconnects
// and the server recovers the session (`socket.recovered`), replaying what was missed. When a
// session cannot be recovered (or after a reload) the page re-joins its rooms with `since`
// (the last seq it holds) or loads the newest page of `room:history`, and any `prev` that
// skips past the last seq held is filled from `room:history {since}`.
import {
  MESSAGE_RECEIVED,
  MESSAGE_SEND,
  PRESENCE_UPDATE,
  REQUEST_ERROR,
  ROOM_HISTORY,
  ROOM_JOIN,
  ROOM_LEAVE,
  TYPING_START,
  TYPING_STOP,
} from "./events.js";
import {
  explainConnectError,
  explainDisconnect,
  gatewayOf,
  nominalDelayMs,
  statusText,
} from "./connection_state.js";
import { DevTools } from "./dev_tools.js";
import { Members } from "./members.js";
import { fillRequest, HISTORY_PAGE, NEWEST, pageIsFull } from "./room_log.js";
import { RoomViews } from "./room_view.js";
import { joinHint, loadSaved, normaliseRoom, save } from "./rooms.js";
import { Typing } from "./typing.js";

const NAMESPACE = "/chat";
const ACK_TIMEOUT_MS = 5000;
const FILL_PAGES_MAX = 20; // a gap larger than this many history pages is left to scroll-back

const $ = (id) => document.getElementById(id);
const saved = loadSaved(globalThis.localStorage);
const state = {
  socket: null,
  me: saved.name, // our user id: the token's `sub`, which /dev-token sets to the name
  url: null,
  lb: null,
  wanted: saved.connected, // connect by itself after a reload
  conn: { phase: "disconnected" },
  countdown: null,
  fills: new Map(), // room -> the chain of gap fills, one after the other
};

const views = new RoomViews({ logs: $("logs"), list: $("rooms"), general: $("log-general") }, pick, leave);
const members = new Members({ panel: $("people"), list: $("members"), title: $("members-title"),
  note: $("members-note") }, () => state.me);
const typing = new Typing($("typing"));
const notice = (text, room) => views.notice("system", text, room);
const error = (text, room) => views.notice("error", text, room);
const dev = new DevTools({ panel: $("dev"), button: $("kill"), hint: $("kill-hint") }, notice, error);

function remember() {
  save(globalThis.localStorage, { name: state.me, rooms: views.names(), active: views.active,
    connected: state.wanted });
}

// ---- the status line -----------------------------------------------------------------

function setConnection(next) {
  const changed = next.phase !== state.conn.phase || next.gateway !== state.conn.gateway;
  state.conn = next;
  clearInterval(state.countdown);
  state.countdown = null;
  if (next.phase === "reconnecting" && next.nextInMs > 0) {
    const deadline = Date.now() + next.nextInMs;
    state.countdown = setInterval(() => {
      showStatus({ ...state.conn, nextInMs: Math.max(deadline - Date.now(), 0) });
    }, 250);
  }
  showStatus(next);
  $("disconnect").disabled = !state.socket;
  if (!changed) return;
  const connected = next.phase === "connected";
  for (const form of ["room-form", "send-form"]) $(form).querySelector("button").disabled = !connected;
  members.setStale(!connected);
  if (!connected) typing.clear(); // stops may be missed while away
  dev.update(connected ? next.gateway : null, state.url === state.lb);
}

function showStatus(conn) {
  const status = $("status");
  status.textContent = statusText(conn);
  status.dataset.phase = conn.phase;
  status.dataset.gateway = conn.gateway ?? "";
  status.dataset.recovered = String(Boolean(conn.recovered));
}

// ---- requests ------------------------------------------------------------------------

// Resolve with the server's ack, or a failure ack shaped like the server's when none came.
function request(event, payload) {
  return new Promise((resolve) => {
    if (!state.socket?.connected) {
      resolve({ ok: false, error: { code: "unavailable", message: "not connected" } });
      return;
    }
    state.socket.timeout(ACK_TIMEOUT_MS).emit(event, payload, (err, ack) => {
      if (err) resolve({ ok: false, error: { code: "timeout", message: `no ack in ${ACK_TIMEOUT_MS} ms` } });
      else resolve(ack ?? { ok: false, error: { code: "internal", message: "empty ack" } });
    });
  });
}

// `where`: the log the error goes to (a room's, or null for the one on screen).
function failed(event, ack, room = null, where = room) {
  if (ack && ack.ok !== false) return false;
  const { code = "?", message = "" } = ack?.error ?? {};
  const hint = event === ROOM_JOIN && room ? joinHint(room, code) : "";
  error(`${event} failed: ${code}${message ? ` (${message})` : ""}${hint ? ` — ${hint}` : ""}`, where);
  return true;
}

function idempotencyKey() {
  // crypto.randomUUID needs a secure context; 127.0.0.1 is one, a LAN address is not.
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

// ---- rooms and history ---------------------------------------------------------------

// Join `room` (again): with `since` when we hold messages of it, so the server replays what
// was missed; otherwise the newest page of its history is loaded.
// The room's log exists before the request: what the server replays ahead of the ack has a
// place to go. A refusal of a room typed just now is said in the log on screen.
async function joinRoom(room) {
  const known = views.has(room);
  let since = views.ensure(room).log.last;
  let ack = await request(ROOM_JOIN, since ? { room, since } : { room });
  if (since && ack?.ok === false && ack.error?.code === "not_recoverable") {
    notice(`messages after #${since} are no longer in the log`, room);
    since = 0;
    ack = await request(ROOM_JOIN, { room });
  }
  if (failed(ROOM_JOIN, ack, room, known ? room : null)) {
    const later = ack?.error?.code === "timeout" || ack?.error?.code === "unavailable";
    if (!known || !later) forget(room); // a room we were in is tried again on the next connect
    return false;
  }
  if (!since) await loadNewest(room);
  if (room === views.active) members.load(request, failed);
  remember();
  return true;
}

async function loadNewest(room) {
  const ack = await request(ROOM_HISTORY, { room, before: NEWEST, limit: HISTORY_PAGE });
  if (failed(ROOM_HISTORY, ack, room)) return;
  for (const message of ack.messages ?? []) views.addMessage(room, message, false);
}

function fillGap(room, since) {
  const chain = (state.fills.get(room) ?? Promise.resolve()).then(() => fill(room, since));
  state.fills.set(room, chain);
}

async function fill(room, since) {
  for (let page = 0; page < FILL_PAGES_MAX && views.has(room); page++) {
    const ack = await request(ROOM_HISTORY, fillRequest(room, since));
    if (failed(ROOM_HISTORY, ack, room)) return;
    for (const message of ack.messages) views.addMessage(room, message, false);
    if (!pageIsFull(ack)) return;
    since = ack.messages.at(-1).seq;
  }
}

function pick(room) {
  typing.stop(state.socket, views.active);
  typing.clear();
  views.show(room);
  members.reset(room);
  if (room && state.socket?.connected) members.load(request, failed);
  remember();
}

function forget(room) {
  views.remove(room);
  if (views.active === room) pick(views.names()[0] ?? null);
  remember();
}

async function leave(room) {
  if (state.socket?.connected) failed(ROOM_LEAVE, await request(ROOM_LEAVE, { room }), room);
  forget(room);
}

async function joinTyped(input) {
  const { room, hint, error: problem } = normaliseRoom(input);
  if (problem) return error(problem);
  if (views.has(room)) {
    pick(room);
  } else if (await joinRoom(room)) {
    pick(room);
    notice(`joined ${room}`, room);
  }
  if (hint) notice(hint); // in the log on screen, whichever room that is now
}

// ---- events from the server ----------------------------------------------------------

function onMessage(message) {
  const room = message?.room;
  if (!views.has(room)) return;
  if (room === views.active) typing.set(message.from, false);
  const gapSince = views.addMessage(room, message, true);
  if (gapSince !== null) fillGap(room, gapSince);
}

function onPresence(update) {
  if (members.onUpdate(update, request, failed) && update.room && update.user !== state.me) {
    notice(`${update.user} ${update.status}`, update.room);
  }
}

function onTyping(update, typist) {
  if (!update || update.room !== views.active || update.user === state.me) return;
  typing.set(update.user, typist);
}

// ---- the connection ------------------------------------------------------------------

async function fetchToken(name) {
  const response = await fetch("dev-token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name }),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error?.message ?? `HTTP ${response.status}`);
  return body.token;
}

function connect(name, url) {
  const socket = io(url + NAMESPACE, {
    // A function, so every (re)connection gets a fresh token rather than an expired one.
    auth: (cb) => fetchToken(name).then(
      (token) => cb({ token }),
      (err) => { error(`no token: ${err.message}`); cb({}); },
    ),
  });
  Object.assign(state, { socket, me: name, url, wanted: true });
  setConnection({ phase: "connecting", url });
  socket.on("connect", () => onConnect(socket));
  socket.on("disconnect", (reason) => onDisconnect(socket, reason));
  socket.on("connect_error", (err) => onConnectError(socket, err));
  // The Manager's events: a Manager may outlive this socket (socket.io-client caches them).
  const mine = (handler) => (...args) => { if (socket === state.socket) handler(...args); };
  socket.io.on("open", mine(() => socket.io.engine.on("upgrade", mine((transport) => {
    if (state.conn.phase !== "connected") return;
    setConnection({ ...state.conn, transport: transport.name });
    locate(socket);
    setTimeout(() => locate(socket), 1000); // in case the registry lagged the takeover
  }))));
  socket.io.on("reconnect_attempt", mine((attempt) => {
    setConnection({ phase: "reconnecting", attempt, nextInMs: 0, why: state.conn.why });
  }));
  socket.io.on("reconnect_failed", mine(() => setConnection({ phase: "disconnected", why: "gave up reconnecting" })));
  socket.on(MESSAGE_RECEIVED, onMessage);
  socket.on(PRESENCE_UPDATE, onPresence);
  socket.on(TYPING_START, (update) => onTyping(update, true));
  socket.on(TYPING_STOP, (update) => onTyping(update, false));
  socket.on(REQUEST_ERROR, (e) => error(`request error${e?.event ? ` on ${e.event}` : ""}: ${e?.code} ${e?.message ?? ""}`));
}

async function onConnect(socket) {
  const { engine } = socket.io;
  setConnection({ phase: "connected", gateway: gatewayOf(engine.id), transport: engine.transport.name,
    recovered: socket.recovered });
  locate(socket);
  remember();
  if (socket.recovered) { // the server gave back our rooms and replayed what we missed
    members.load(request, failed);
    return;
  }
  const rooms = views.names();
  if (rooms.length === 0) return joinTyped($("room").value);
  for (const room of rooms) await joinRoom(room);
}

// Development: the holder per the registry, where the sid's gateway may be out of date.
async function locate(socket) {
  const sid = socket.io.engine?.id;
  const gateway = await dev.locate(state.me, sid);
  if (gateway && socket === state.socket && socket.io.engine?.id === sid
      && state.conn.phase === "connected" && gateway !== state.conn.gateway) {
    setConnection({ ...state.conn, gateway });
  }
}

function onDisconnect(socket, reason) {
  if (socket !== state.socket) return;
  const why = explainDisconnect(reason);
  if (!socket.active) return setConnection({ phase: "disconnected", why });
  const nextInMs = nominalDelayMs(1, socket.io.reconnectionDelay(), socket.io.reconnectionDelayMax());
  setConnection({ phase: "reconnecting", attempt: 1, nextInMs, why });
}

// Also fired for a failed reconnection attempt (before the Manager schedules the next one).
function onConnectError(socket, err) {
  if (socket !== state.socket) return;
  const why = explainConnectError(err);
  if (!socket.active) { // a refusal (CONNECT_ERROR): socket.io-client does not retry
    error(`connection refused: ${why}`);
    return setConnection({ phase: "disconnected", why: `refused: ${why}` });
  }
  const attempt = (state.conn.phase === "reconnecting" ? state.conn.attempt : 0) + 1;
  const nextInMs = nominalDelayMs(attempt, socket.io.reconnectionDelay(), socket.io.reconnectionDelayMax());
  setConnection({ phase: "reconnecting", attempt, nextInMs, why });
}

function disconnect() {
  const socket = state.socket;
  if (!socket) return;
  typing.stop(socket, views.active);
  Object.assign(state, { socket: null, wanted: false });
  socket.disconnect();
  setConnection({ phase: "disconnected", why: "you disconnected" });
  remember();
}

// ---- wiring --------------------------------------------------------------------------

async function loadConfig() {
  const { gateways = [], lb = null } = await (await fetch("config.json")).json();
  state.lb = lb;
  const options = [...(lb ? [[lb, `load balancer ${lb} (recommended)`]] : []),
    ...gateways.map((url, i) => [url, `gateway ${i + 1} only: ${url}`])];
  for (const [url, label] of options) {
    const option = document.createElement("option");
    option.value = url;
    option.textContent = label;
    $("gateway").append(option);
  }
  // Without a balancer, different tabs land on different gateways, which is the demo's point.
  $("gateway").selectedIndex = lb ? 0 : Math.floor(Math.random() * gateways.length);
  await dev.enable();
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  disconnect();
  connect($("name").value, $("gateway").value);
});
$("disconnect").addEventListener("click", disconnect);
$("room-form").addEventListener("submit", (event) => {
  event.preventDefault();
  joinTyped($("room").value);
});
$("send-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("text").value;
  const room = views.active;
  if (!text.trim() || !room) return;
  typing.stop(state.socket, room);
  const ack = await request(MESSAGE_SEND, { room, text, id: idempotencyKey() });
  if (!failed(MESSAGE_SEND, ack, room)) $("text").value = "";
});
$("text").addEventListener("input", () => typing.noteInput(state.socket, views.active, $("text").value));

$("name").value = saved.name;
for (const room of saved.rooms) views.ensure(room);
if (saved.active) pick(saved.active);

if (typeof io !== "function") {
  error("socket.io.min.js did not load: run `npm ci --prefix web` and reload");
} else {
  loadConfig().then(
    () => { if (state.wanted && saved.name) connect(saved.name, $("gateway").value); },
    (err) => error(`cannot load config.json: ${err.message}`),
  );
}
