// The order book page: socket.io-client with its default options against the cluster's
// balancer (or the first gateway), auth {api_key, name} for the /orders connect hook.
"use strict";

const $ = (id) => document.getElementById(id);
const seen = new Set();  // order ids already shown (a reconnect may replay)
let socket = null;

function log(text, isError = false) {
  const line = document.createElement("div");
  line.textContent = text;  // never innerHTML: names and ids come from other users
  if (isError) line.className = "error";
  $("log").prepend(line);
}

function show(order) {
  if (!order || seen.has(order.user + ":" + order.id)) return;
  seen.add(order.user + ":" + order.id);
  const body = $(order.side === "sell" ? "sell" : "buy").tBodies[0];
  const row = document.createElement("tr");
  for (const value of [Number(order.price).toFixed(2), order.qty, order.user]) {
    const cell = document.createElement("td");
    cell.textContent = String(value);
    row.append(cell);
  }
  const rows = [...body.rows, row].sort((a, b) => {
    const diff = Number(a.cells[0].textContent) - Number(b.cells[0].textContent);
    return order.side === "sell" ? diff : -diff;
  });
  body.replaceChildren(...rows);
}

async function gatewayUrl() {
  const config = await (await fetch("/config.json")).json();
  return config.lb || config.gateways[0];
}

async function connect(event) {
  event.preventDefault();
  if (socket) socket.disconnect();
  const url = await gatewayUrl();
  socket = io(url + "/orders", { auth: { api_key: $("key").value, name: $("name").value } });
  $("status").textContent = "connecting";
  socket.on("connect", () => {
    $("status").textContent = `connected (${socket.recovered ? "recovered" : "fresh"})`;
    $("submit").disabled = false;
    socket.emitWithAck("room:history", { room: "room:book", limit: 100 }).then((ack) => {
      for (const message of (ack && ack.messages) || []) show(message.data || message);
    }, () => {});
  });
  socket.on("connect_error", (err) => {
    $("status").textContent = "refused";
    log(`connect refused: ${err.message}${err.data ? " " + JSON.stringify(err.data) : ""}`, true);
  });
  socket.on("disconnect", (reason) => {
    $("status").textContent = `disconnected: ${reason}`;
    $("submit").disabled = true;
  });
  socket.on("book:welcome", (hello) => log(`welcome ${hello.user}, you are in ${hello.room}`));
  socket.on("book:order", (order) => show(order));
}

async function place(event) {
  event.preventDefault();
  const order = { id: crypto.randomUUID(), side: $("side").value,
                  price: Number($("price").value), qty: Number($("qty").value) };
  try {
    // The same id on every retry: the worker answers a retry with its first ack.
    const ack = await socket.timeout(5000).emitWithAck("order:place", order);
    if (ack.ok) log(`order ${ack.id} placed (${ack.placed} this session)`);
    else log(`refused: ${ack.error.code}: ${ack.error.message}`, true);
  } catch (err) {
    log(`no answer: ${err.message}`, true);
  }
}

$("login").addEventListener("submit", connect);
$("place").addEventListener("submit", place);
