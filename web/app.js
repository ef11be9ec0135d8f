// Switchboard demo chat: the `/chat` namespace through the unmodified socket.io-client
// (the global `io` from socket.io.min.js, served from web/node_modules).
//
// socket.io-client runs with its default options: HTTP long-polling first, then the upgrade
// to WebSocket.
//
// Everything a server or another user sent is rendered with textContent, never innerHTML.
//
// Presence: the members panel is loaded with `room:presence` after every join and every
// (re)connection, then kept current by `presence:update` (joined/left/online/offline); a
// `{room, count}` summary (big rooms) means the list is stale, so it is fetched again.
// Typing: `typing:start`/`typing:stop` from the presence service, which sends the stop when a
// typist goes quiet; the page also forgets a typist who sends a message or stays silent.
import {
  MESSAGE_RECEIVED,
  MESSAGE_SEND,
  PRESENCE_UPDATE,
  REQUEST_ERROR,
  ROOM_JOIN,
  ROOM_LEAVE,
  ROOM_PRESENCE,
  TYPING_START,
  TYPING_STOP,
} from "./events.js";

const NAMESPACE = "/chat";
const ACK_TIMEOUT_MS = 5000;
const TYPING_SEND_EVERY_MS = 1000; // throttle for our typing:start (the server coalesces too)
const TYPING_FORGET_MS = 30000; // safety net for a lost typing:stop: a typist is announced once per stretch, however long

const $ = (id) => document.getElementById(id);
const state = {
  socket: null,
  me: null, // our user id: the token's `sub`, which /dev-token sets to the name
  room: null,
  typingSentAt: 0, // when we last sent typing:start; 0 = not typing
  typists: new Map(), // user -> timer that forgets them
  members: new Map(), // user -> online?
  membersTotal: null, // the server's count when the list was truncated
  membersLoad: 0, // generation of the latest room:presence request
  pendingUpdates: null, // presence updates seen while a room:presence request is in flight
};

// ---- rendering -----------------------------------------------------------------------

function line(kind, ...parts) {
  const item = document.createElement("li");
  item.className = kind;
  for (const [cls, text] of parts) {
    const span = document.createElement("span");
    if (cls) span.className = cls;
    span.textContent = String(text);
    item.append(span);
  }
  $("log").append(item);
  item.scrollIntoView({ block: "end" });
}

const system = (text) => line("system", ["", text]);
const error = (text) => line("error", ["", text]);

function formatTime(ts) {
  // `ts` is epoch milliseconds (or seconds, or an ISO string): show whatever parses.
  const value = typeof ts === "number" && ts < 1e11 ? ts * 1000 : ts;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(ts ?? "") : date.toLocaleTimeString();
}

function showMessage(msg) {
  if (!msg || typeof msg !== "object") return;
  if (msg.room === state.room && state.typists.has(msg.from)) setTypist(msg.from, false);
  line("message", ["meta", `${formatTime(msg.ts)} ${msg.room ?? ""}`], ["from", msg.from ?? "?"],
    ["text", msg.text ?? ""]);
}

function renderMembers() {
  const names = [...state.members.keys()].sort((a, b) => a.localeCompare(b));
  const items = names.map((name) => {
    const item = document.createElement("li");
    const online = state.members.get(name);
    item.textContent = name + (name === state.me ? " (you)" : "") + (online ? "" : " (offline)");
    if (!online) item.classList.add("offline");
    if (name === state.me) item.classList.add("you");
    return item;
  });
  $("members").replaceChildren(...items);
  const total = state.membersTotal ?? names.length;
  $("members-title").textContent = state.room ? `Members (${total})` : "Members";
  $("members-note").textContent = names.length < total ? `showing ${names.length} of ${total}` : "";
}

// room:presence for the current room; a newer request or a room change discards the answer.
async function loadMembers() {
  const room = state.room;
  const load = ++state.membersLoad;
  state.pendingUpdates = [];
  const ack = await request(ROOM_PRESENCE, { room });
  if (load !== state.membersLoad || room !== state.room) return;
  const pending = state.pendingUpdates;
  state.pendingUpdates = null;
  if (failed(ROOM_PRESENCE, ack)) {
    $("members-note").textContent = "the member list is unavailable";
    return;
  }
  state.members = new Map((ack.users ?? []).map((user) => [user, true]));
  if (state.me) state.members.set(state.me, true); // we have joined, whatever the snapshot says
  state.membersTotal = ack.truncated ? ack.count : null;
  // Updates that crossed the request: re-applying them in order is harmless and catches up.
  for (const update of pending) applyPresence(update);
  renderMembers();
}

function applyPresence(update) {
  const { user, status } = update;
  if (user === state.me) return; // while we are in the room we are a member, and online
  if (status === "joined") state.members.set(user, true);
  else if (status === "left") state.members.delete(user);
  else if ((status === "online" || status === "offline") && state.members.has(user)) {
    state.members.set(user, status === "online");
  }
}

function onPresence(update) {
  if (!update || typeof update !== "object" || !state.room) return;
  if (update.room !== undefined && update.room !== state.room) return;
  if (update.count !== undefined) { // a big room's summary: the list is stale
    loadMembers();
    return;
  }
  if (state.pendingUpdates) state.pendingUpdates.push(update);
  applyPresence(update);
  renderMembers();
  if (update.room && update.user !== state.me) system(`${update.user} ${update.status} ${update.room}`);
}

function clearMembers() {
  state.membersLoad++;
  state.pendingUpdates = null;
  state.members.clear();
  state.membersTotal = null;
  renderMembers();
}

// "A is typing…", "A and B are typing…", "A, B and C are typing…", "A, B and 3 others are typing…"
function typingText(names) {
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  const shown = names.length > 3 ? [...names.slice(0, 2), `${names.length - 2} others`] : names;
  return `${shown.slice(0, -1).join(", ")} and ${shown.at(-1)} are typing…`;
}

function renderTyping() {
  $("typing").textContent = typingText([...state.typists.keys()]);
}

function setTypist(user, typing) {
  clearTimeout(state.typists.get(user));
  if (typing) state.typists.set(user, setTimeout(() => setTypist(user, false), TYPING_FORGET_MS));
  else state.typists.delete(user);
  renderTyping();
}

function onTyping(update, typing) {
  if (!update || update.room !== state.room || update.user === state.me) return;
  setTypist(update.user, typing);
}

function clearTypists() {
  for (const timer of state.typists.values()) clearTimeout(timer);
  state.typists.clear();
  renderTyping();
}

function setStatus(text, connected) {
  $("status").textContent = text;
  $("disconnect").disabled = !state.socket;
  for (const form of ["room-form", "send-form"]) {
    $(form).querySelector("button").disabled = !connected;
  }
}

// ---- requests ------------------------------------------------------------------------

// Resolve with the server's ack, or a failure ack shaped like the server's when none came.
function request(event, payload) {
  return new Promise((resolve) => {
    state.socket.timeout(ACK_TIMEOUT_MS).emit(event, payload, (err, ack) => {
      if (err) resolve({ ok: false, error: { code: "timeout", message: `no ack in ${ACK_TIMEOUT_MS} ms` } });
      else resolve(ack ?? { ok: false, error: { code: "internal", message: "empty ack" } });
    });
  });
}

function failed(event, ack) {
  if (ack && ack.ok !== false) return false;
  const { code = "?", message = "" } = ack?.error ?? {};
  error(`${event} failed: ${code}${message ? ` (${message})` : ""}`);
  return true;
}

function idempotencyKey() {
  // crypto.randomUUID needs a secure context; 127.0.0.1 is one, a LAN address is not.
  if (crypto.randomUUID) return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function join(room) {
  if (state.room && state.room !== room) {
    stopTyping();
    failed(ROOM_LEAVE, await request(ROOM_LEAVE, { room: state.room }));
    state.room = null;
    clearMembers();
    clearTypists();
  }
  const ack = await request(ROOM_JOIN, { room });
  if (failed(ROOM_JOIN, ack)) return;
  state.room = room;
  state.members.set(state.me, true);
  renderMembers();
  system(`joined ${room}`);
  await loadMembers();
}

async function send(text) {
  stopTyping();
  const ack = await request(MESSAGE_SEND, { room: state.room, text, id: idempotencyKey() });
  return !failed(MESSAGE_SEND, ack);
}

// On every input event: typing:start at most once a second (each one keeps the server's 5 s
// quiet timer from expiring), typing:stop when the input is cleared.
function noteTyping() {
  if (!$("text").value) {
    stopTyping();
    return;
  }
  if (!state.room || !state.socket?.connected) return;
  if (Date.now() - state.typingSentAt < TYPING_SEND_EVERY_MS) return;
  state.typingSentAt = Date.now();
  state.socket.emit(TYPING_START, { room: state.room }, () => {});
}

function stopTyping() {
  if (!state.typingSentAt) return;
  state.typingSentAt = 0;
  if (state.room && state.socket?.connected) state.socket.emit(TYPING_STOP, { room: state.room }, () => {});
}

// ---- connection ----------------------------------------------------------------------

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

function connect(name, gatewayUrl) {
  const socket = io(gatewayUrl + NAMESPACE, {
    // A function, so every (re)connection gets a fresh token rather than an expired one.
    auth: (cb) => fetchToken(name).then(
      (token) => cb({ token }),
      (err) => { error(`no token: ${err.message}`); cb({}); },
    ),
  });
  state.socket = socket;
  state.me = name;
  socket.on("connect", () => {
    setStatus(`connected to ${gatewayUrl} as ${name}${socket.recovered ? " (recovered)" : ""}`, true);
    if (!socket.recovered) join(state.room ?? $("room").value);
    else if (state.room) loadMembers(); // recovery replays messages, not presence
  });
  socket.on("disconnect", (reason) => {
    setStatus(`disconnected: ${reason}`, false);
    state.typingSentAt = 0;
    clearTypists(); // stops may be missed while away
  });
  socket.on("connect_error", (err) => {
    const code = err.data?.code ? ` [${err.data.code}]` : "";
    error(`connect error: ${err.message}${code}${socket.active ? " (retrying)" : ""}`);
    if (!socket.active) setStatus("refused by the server", false);
  });
  socket.on(MESSAGE_RECEIVED, showMessage);
  socket.on(PRESENCE_UPDATE, onPresence);
  socket.on(TYPING_START, (update) => onTyping(update, true));
  socket.on(TYPING_STOP, (update) => onTyping(update, false));
  socket.on(REQUEST_ERROR, (e) => error(`request error${e?.event ? ` on ${e.event}` : ""}: ${e?.code} ${e?.message ?? ""}`));
}

function disconnect() {
  stopTyping();
  state.socket?.disconnect();
  state.socket = null;
  state.room = null;
  clearMembers();
  clearTypists();
  setStatus("disconnected", false);
}

// ---- wiring --------------------------------------------------------------------------

async function loadGateways() {
  const { gateways = [] } = await (await fetch("config.json")).json();
  for (const url of gateways) {
    const option = document.createElement("option");
    option.value = url;
    option.textContent = url;
    $("gateway").append(option);
  }
  // Different tabs land on different gateways by default, which is the point of the demo.
  $("gateway").selectedIndex = Math.floor(Math.random() * gateways.length);
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  disconnect();
  connect($("name").value, $("gateway").value);
});
$("disconnect").addEventListener("click", disconnect);
$("room-form").addEventListener("submit", (event) => {
  event.preventDefault();
  join($("room").value.trim());
});
$("send-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("text").value;
  if (!text.trim() || !state.room) return;
  if (await send(text)) $("text").value = "";
});
$("text").addEventListener("input", noteTyping);

if (typeof io !== "function") {
  error("socket.io.min.js did not load: run `npm ci --prefix web` and reload");
} else {
  loadGateways().catch((err) => error(`cannot load config.json: ${err.message}`));
}
