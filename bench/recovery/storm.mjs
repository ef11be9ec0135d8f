// Recovery-storm clients: N unmodified socket.io-client sockets in this one node process, plus
// one publisher socket, driven by bench/recovery.py.
//
// `node storm.mjs --config FILE` (JSON, see DEFAULTS). Client i connects to `proxy_url` +
// namespace with `transports: ["websocket"]`, `forceNew: true` (one Engine.IO connection per
// socket) and `auth: {token}`, plus `client_options` (the reconnection overrides, empty by
// default: socket.io-client's own defaults apply), and joins room `room_prefix + (i % rooms)`.
// The publisher connects straight to `publisher_url` (never through the proxy) and joins every
// room. Once all are in, it prints {"event":"ready",...} and reads commands on stdin, one JSON
// object a line:
//   {"cmd":"publish","round":R}    the publisher sends one message:send per room, id
//                                  "<tag>-<room index>-<R>" (acked ids become expected ids)
//   {"cmd":"watch"}                from now on, print every disconnect / reconnect attempt /
//                                  connect / connect_error of the clients; answers
//                                  {"event":"watching"}
//   {"cmd":"killed","t0":MS}       the runner's kill time (epoch ms), echoed back with our
//                                  receipt time: a check of the shared clock
//   {"cmd":"await_delivery","timeout_ms":T}  wait for every publish ack, then until every client
//                                  has every expected id of its room (or T ms), then print
//                                  {"event":"delivered",...}
//   {"cmd":"report"}               print {"event":"report",...}: one row per client
//   {"cmd":"quit"} (or EOF)        close everything and exit
// Times are epoch milliseconds from `performance.timeOrigin + performance.now()`, the same
// clock as Python's time.time() (the ready event carries a reading so the runner can check).
// Every stdout line is one JSON object; diagnostics go to stderr. The process exits by itself
// after `max_lifetime_s` whatever happens.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const DEFAULTS = {
  proxy_url: "http://127.0.0.1:8001",
  publisher_url: "http://127.0.0.1:8002",
  namespace: "/chat",
  clients: 1000,
  rooms: 10,
  room_prefix: "room:rb-",
  tokens_file: null, // clients' tokens first, then the publisher's; one per line
  client_options: {},
  connect_concurrency: 50,
  connect_timeout_s: 120,
  max_lifetime_s: 300,
  run_tag: "rb",
};

const now = () => performance.timeOrigin + performance.now();
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const log = (...args) => process.stderr.write(`[storm] ${args.join(" ")}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const configPath = process.argv[process.argv.indexOf("--config") + 1];
const cfg = { ...DEFAULTS, ...JSON.parse(readFileSync(configPath, "utf8")) };
const tokens = readFileSync(cfg.tokens_file, "utf8").split("\n").filter(Boolean);
if (tokens.length < cfg.clients + 1) {
  throw new Error(`need ${cfg.clients + 1} tokens, got ${tokens.length}`);
}
setTimeout(() => {
  log(`max lifetime ${cfg.max_lifetime_s} s reached, exiting`);
  process.exit(3);
}, cfg.max_lifetime_s * 1000).unref();

const roomName = (k) => cfg.room_prefix + k;
const expected = Array.from({ length: cfg.rooms }, () => new Set()); // acked ids per room
const pendingAcks = new Set();
const publishErrors = [];
let watching = false;

class Client {
  constructor(index) {
    this.index = index;
    this.room = index % cfg.rooms;
    this.seen = new Map(); // message id -> times received
    this.unexpected = 0; // events of another room
    this.outOfOrder = 0; // a seq lower than the last one seen
    this.lastSeq = 0;
    this.connects = 0;
    this.storm = null; // what happened after the kill
    this.socket = io(cfg.proxy_url + cfg.namespace, {
      ...cfg.client_options,
      transports: ["websocket"],
      forceNew: true,
      auth: { token: tokens[index] },
    });
    const socket = this.socket;
    socket.on("message:received", (message) => this.onMessage(message));
    socket.on("connect", () => this.onConnect());
    socket.on("disconnect", (reason) => {
      if (!watching) return;
      this.stormState().disconnect_t = now();
      this.stormState().reason = reason;
      out({ event: "disconnect", i: index, t: now(), reason });
    });
    socket.on("connect_error", (err) => {
      if (!watching) return;
      this.stormState().connect_errors += 1;
      out({ event: "connect_error", i: index, t: now(), message: err.message });
    });
    socket.io.on("reconnect_attempt", (attempt) => {
      if (!watching) return;
      const state = this.stormState();
      state.attempt_t = now();
      state.attempts = attempt;
      out({ event: "attempt", i: index, t: state.attempt_t, attempt });
    });
  }

  stormState() {
    this.storm ??= { disconnect_t: null, reason: null, attempt_t: null, attempts: 0,
      connect_t: null, recovered: null, connect_errors: 0, rejoined: null };
    return this.storm;
  }

  onMessage(message) {
    if (!message || message.room !== roomName(this.room)) {
      this.unexpected += 1;
      return;
    }
    this.seen.set(message.id, (this.seen.get(message.id) ?? 0) + 1);
    if (typeof message.seq === "number") {
      if (message.seq < this.lastSeq) this.outOfOrder += 1;
      this.lastSeq = Math.max(this.lastSeq, message.seq);
    }
  }

  onConnect() {
    this.connects += 1;
    if (this.connects === 1) {
      this.firstConnect?.();
      return;
    }
    const t = now();
    const recovered = this.socket.recovered === true;
    const state = this.stormState();
    state.connect_t = t;
    state.recovered = recovered;
    out({ event: "connect", i: this.index, t, recovered, attempts: state.attempts });
    if (!recovered) {
      // A fresh session has no rooms: join again, as an application would (what it missed
      // meanwhile is gone for it and shows up as lost).
      this.socket.emit("room:join", { room: roomName(this.room) }, (ack) => {
        state.rejoined = ack?.ok === true;
      });
    }
  }

  start(timeoutMs) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`client ${this.index}: no connect`)),
        timeoutMs);
      this.firstConnect = () => {
        this.socket.emit("room:join", { room: roomName(this.room) }, (ack) => {
          clearTimeout(timer);
          if (ack?.ok) resolve();
          else reject(new Error(`client ${this.index}: join refused ${JSON.stringify(ack)}`));
        });
      };
    });
  }

  missing() {
    let count = 0;
    for (const id of expected[this.room]) if (!this.seen.has(id)) count += 1;
    return count;
  }

  row() {
    let dup = 0;
    let stray = 0; // an id of this room that was never acked to the publisher
    for (const [id, times] of this.seen) {
      dup += times - 1;
      if (!expected[this.room].has(id)) stray += 1;
    }
    const s = this.storm ?? {};
    return {
      i: this.index,
      room: this.room,
      connected: this.socket.connected,
      disconnect_t: s.disconnect_t ?? null,
      reason: s.reason ?? null,
      attempt_t: s.attempt_t ?? null,
      attempts: s.attempts ?? 0,
      connect_t: s.connect_t ?? null,
      recovered: s.recovered ?? null,
      connect_errors: s.connect_errors ?? 0,
      rejoined: s.rejoined ?? null,
      received: this.seen.size,
      lost: this.missing(),
      dup,
      stray,
      unexpected: this.unexpected,
      out_of_order: this.outOfOrder,
    };
  }
}

function connectPublisher() {
  const socket = io(cfg.publisher_url + cfg.namespace, {
    transports: ["websocket"],
    forceNew: true,
    auth: { token: tokens[cfg.clients] },
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("publisher: no connect")), 30_000);
    socket.once("connect", async () => {
      for (let k = 0; k < cfg.rooms; k++) {
        const ack = await socket.emitWithAck("room:join", { room: roomName(k) });
        if (!ack?.ok) {
          reject(new Error(`publisher: join refused ${JSON.stringify(ack)}`));
          return;
        }
      }
      clearTimeout(timer);
      resolve(socket);
    });
    socket.on("connect_error", (err) => log(`publisher connect_error: ${err.message}`));
  });
}

function publish(publisher, round) {
  for (let k = 0; k < cfg.rooms; k++) {
    const id = `${cfg.run_tag}-${k}-${round}`;
    const send = publisher
      .timeout(30_000)
      .emitWithAck("message:send", { room: roomName(k), id, text: `r${round}` })
      .then((ack) => {
        if (ack?.ok) expected[k].add(id);
        else publishErrors.push({ id, ack });
      })
      .catch((err) => publishErrors.push({ id, error: String(err) }))
      .finally(() => pendingAcks.delete(send));
    pendingAcks.add(send);
  }
}

async function awaitDelivery(clients, timeoutMs) {
  const start = now();
  const deadline = start + timeoutMs;
  while (pendingAcks.size && now() < deadline) await Promise.race([...pendingAcks, sleep(50)]);
  let missing = 0;
  for (;;) {
    missing = 0;
    for (const client of clients) missing += client.missing();
    if (missing === 0 || now() >= deadline) break;
    await sleep(20);
  }
  out({ event: "delivered", complete: missing === 0 && pendingAcks.size === 0, missing,
    pending_acks: pendingAcks.size, publish_errors: publishErrors.length,
    expected: expected.reduce((n, ids) => n + ids.size, 0), ms: Math.round(now() - start) });
}

function optionsInEffect(socket) {
  const manager = socket.io;
  return {
    reconnection: manager.reconnection(),
    reconnectionDelay: manager.reconnectionDelay(),
    reconnectionDelayMax: manager.reconnectionDelayMax(),
    randomizationFactor: manager.randomizationFactor(),
    reconnectionAttempts: manager.reconnectionAttempts(),
    timeout: manager.timeout(),
  };
}

async function main() {
  const setupStart = now();
  const publisher = await connectPublisher();
  const clients = [];
  let next = 0;
  const worker = async () => {
    while (next < cfg.clients) {
      const client = new Client(next++);
      clients.push(client);
      await client.start(cfg.connect_timeout_s * 1000);
    }
  };
  await Promise.all(Array.from({ length: cfg.connect_concurrency }, worker));
  clients.sort((a, b) => a.index - b.index);
  const version = createRequire(import.meta.url)("socket.io-client/package.json").version;
  out({ event: "ready", clients: clients.length, setup_ms: Math.round(now() - setupStart),
    clock_ms: now(), options: optionsInEffect(clients[0].socket), client_version: version,
    node: process.version });

  const quit = (code) => {
    for (const client of clients) client.socket.disconnect();
    publisher.disconnect();
    setTimeout(() => process.exit(code), 50);
  };
  const rl = createInterface({ input: process.stdin });
  rl.on("close", () => quit(0));
  rl.on("line", (line) => {
    if (!line.trim()) return;
    const cmd = JSON.parse(line);
    if (cmd.cmd === "publish") publish(publisher, cmd.round);
    else if (cmd.cmd === "watch") {
      watching = true;
      out({ event: "watching", t: now() });
    } else if (cmd.cmd === "killed") out({ event: "killed", t0: cmd.t0, received_t: now() });
    else if (cmd.cmd === "await_delivery") void awaitDelivery(clients, cmd.timeout_ms);
    else if (cmd.cmd === "report") {
      out({ event: "report", rows: clients.map((c) => c.row()), publish_errors: publishErrors,
        expected: expected.map((ids) => ids.size) });
    } else if (cmd.cmd === "quit") quit(0);
    else log(`unknown command ${line}`);
  });
}

main().catch((err) => {
  out({ event: "fatal", error: String(err?.stack ?? err) });
  process.exit(1);
});
