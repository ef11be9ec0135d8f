// Switchboard demo chat: the `/chat` namespace through the unmodified socket.io-client
// (the global `io` from socket.io.min.js, served from web/node_modules).
//
// socket.io-client must be given `transports: ["websocket"]` until the gateways serve the
// HTTP long-polling transport: its default first tries long-polling, which they refuse.
//
// Everything a server or another user sent is rendered with textContent, never innerHTML.
import {
  MESSAGE_RECEIVED,
  MESSAGE_SEND,
  PRESENCE_UPDATE,
  REQUEST_ERROR,
  ROOM_JOIN,
  ROOM_LEAVE,
  TYPING_START,
  TYPING_STOP,
} from "./events.js";

const NAMESPACE = "/chat";
const ACK_TIMEOUT_MS = 5000;
const TYPING_IDLE_MS = 2000;

const $ = (id) => document.getElementById(id);
const state = { socket: null, room: null, typingTimer: null, typists: new Set() };

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
  line("message", ["meta", `${formatTime(msg.ts)} ${msg.room ?? ""}`], ["from", msg.from ?? "?"],
    ["text", msg.text ?? ""]);
}

function showPresence(update) {
  if (!update || typeof update !== "object") return;
  if (update.room && update.count !== undefined) system(`${update.room}: ${update.count} here`);
  else if (update.room) system(`${update.user} ${update.status} ${update.room}`);
  else system(`${update.user} is ${update.status}`);
}

function showTyping(update, typing) {
  if (!update || update.room !== state.room) return;
  if (typing) state.typists.add(update.user);
  else state.typists.delete(update.user);
  const names = [...state.typists];
  $("typing").textContent = names.length ? `${names.join(", ")} typing…` : "";
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
    failed(ROOM_LEAVE, await request(ROOM_LEAVE, { room: state.room }));
  }
  const ack = await request(ROOM_JOIN, { room });
  if (failed(ROOM_JOIN, ack)) return;
  state.room = room;
  state.typists.clear();
  $("typing").textContent = "";
  system(`joined ${room}`);
}

async function send(text) {
  stopTyping();
  const ack = await request(MESSAGE_SEND, { room: state.room, text, id: idempotencyKey() });
  return !failed(MESSAGE_SEND, ack);
}

function noteTyping() {
  if (!state.room || !state.socket?.connected) return;
  if (state.typingTimer === null) state.socket.emit(TYPING_START, { room: state.room }, () => {});
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping() {
  if (state.typingTimer === null) return;
  clearTimeout(state.typingTimer);
  state.typingTimer = null;
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
    transports: ["websocket"], // required until long-polling exists, see the top of this file
    // A function, so every (re)connection gets a fresh token rather than an expired one.
    auth: (cb) => fetchToken(name).then(
      (token) => cb({ token }),
      (err) => { error(`no token: ${err.message}`); cb({}); },
    ),
  });
  state.socket = socket;
  socket.on("connect", () => {
    setStatus(`connected to ${gatewayUrl} as ${name}${socket.recovered ? " (recovered)" : ""}`, true);
    if (!socket.recovered) join(state.room ?? $("room").value);
  });
  socket.on("disconnect", (reason) => setStatus(`disconnected: ${reason}`, false));
  socket.on("connect_error", (err) => {
    const code = err.data?.code ? ` [${err.data.code}]` : "";
    error(`connect error: ${err.message}${code}${socket.active ? " (retrying)" : ""}`);
    if (!socket.active) setStatus("refused by the server", false);
  });
  socket.on(MESSAGE_RECEIVED, showMessage);
  socket.on(PRESENCE_UPDATE, showPresence);
  socket.on(TYPING_START, (update) => showTyping(update, true));
  socket.on(TYPING_STOP, (update) => showTyping(update, false));
  socket.on(REQUEST_ERROR, (e) => error(`request error${e?.event ? ` on ${e.event}` : ""}: ${e?.code} ${e?.message ?? ""}`));
}

function disconnect() {
  stopTyping();
  state.socket?.disconnect();
  state.socket = null;
  state.room = null;
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
