// Recovery-storm node processes, driven by bench/recovery.py: either a share of the clients
// (unmodified socket.io-client sockets) or the publisher.
//
// `node storm.mjs --config FILE` (JSON, see DEFAULTS). `role` is "clients" or "publisher".
//
// clients: client i (first <= i < first + count) connects to `url` + namespace with
// `transports: ["websocket"]`, `forceNew: true` (one Engine.IO connection per socket) and
// `auth: {token}`, plus `client_options` (the reconnection overrides, empty by default:
// socket.io-client's own defaults apply), and joins room `room_prefix + (i % rooms)`.
// publisher: ceil(rooms / 10) sockets straight to `url` (never through the balancer), socket k
// joined to rooms 10k..10k+9 (the request limit's burst is 20 joins).
//
// Once all are in, it prints {"event":"ready",...} and reads commands on stdin, one JSON object
// a line. Both roles:
//   {"cmd":"report"}   clients: one row per client; publisher: the acked ids and the errors
//   {"cmd":"quit"} (or EOF)  close everything and exit
// clients:
//   {"cmd":"watch"}    from now on, print every post-kill connect of a client
//                      ({"event":"connect","i","t","recovered"}); answers {"event":"watching"}
//   {"cmd":"killed","t0":MS}   the runner's kill time, echoed back with our receipt time
//   {"cmd":"expect","expected":{room index: [ids]},"timeout_ms":T}  these ids were acked to the
//                      publisher (replacing what was expected before); wait until every client
//                      has every expected id of its room (or T ms), then print
//                      {"event":"delivered",...}
// publisher:
//   {"cmd":"publish","round":R}  one message:send per room, id "<tag>-<room index>-<R>"
//   {"cmd":"flush","timeout_ms":T}  wait for every publish ack, then print
//                      {"event":"flushed","expected":{room index: [acked ids]},...}
// Times are milliseconds of CLOCK_MONOTONIC (`process.hrtime`), the same clock as Python's
// time.monotonic(), which a step of the wall clock does not move (the ready event carries a
// reading so the runner can check).
// Every stdout line is one JSON object; diagnostics go to stderr. The process exits by itself
// after `max_lifetime_s` whatever happens.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const DEFAULTS = {
  role: "clients",
  url: "http://127.0.0.1:8001",
  namespace: "/chat",
  first: 0,
  count: 1000,
  rooms: 10,
  room_prefix: "room:rb-",
  tokens_file: null, // one per line: client i uses line i, publisher socket k line `first` + k
  client_options: {},
  connect_concurrency: 50,
  connect_timeout_s: 120,
  max_lifetime_s: 300,
  run_tag: "rb",
};
const ROOMS_PER_PUBLISHER = 10;

const now = () => Number(process.hrtime.bigint()) / 1e6;
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const log = (...args) => process.stderr.write(`[storm] ${args.join(" ")}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const configPath = process.argv[process.argv.indexOf("--config") + 1];
const cfg = { ...DEFAULTS, ...JSON.parse(readFileSync(configPath, "utf8")) };
const tokens = readFileSync(cfg.tokens_file, "utf8").split("\n").filter(Boolean);
setTimeout(() => {
  log(`max lifetime ${cfg.max_lifetime_s} s reached, exiting`);
  process.exit(3);
}, cfg.max_lifetime_s * 1000).unref();

const roomName = (k) => cfg.room_prefix + k;
let expected = Array.from({ length: cfg.rooms }, () => new Set()); // acked ids per room
let watching = false;

class Client {
  constructor(index) {
    this.index = index;
    this.room = index % cfg.rooms;
    this.seen = new Map(); // message id -> times received
    this.unexpected = 0; // events of another room
    this.outOfOrder = 0; // a seq not above the last one seen
    this.prevBreaks = 0; // a prev that is not the last seq seen (a gap or a reordering)
    this.lastSeq = 0;
    this.connects = 0;
    this.lastError = null;
    this.storm = null; // what happened after the kill
    this.socket = io(cfg.url + cfg.namespace, {
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
      const state = this.stormState();
      state.disconnect_t ??= now();
      state.reason ??= reason;
      state.disconnects += 1;
    });
    socket.on("connect_error", (err) => {
      const why = err?.description?.message ?? err?.description;
      this.lastError = String(err?.message ?? err) + (why ? `: ${why}` : "");
      if (!watching) return;
      const state = this.stormState();
      state.connect_errors += 1;
      state.error = this.lastError;
    });
    socket.io.on("reconnect_attempt", (attempt) => {
      if (!watching) return;
      const state = this.stormState();
      state.attempt_t = now();
      state.attempts = attempt;
    });
  }

  stormState() {
    this.storm ??= { disconnect_t: null, reason: null, disconnects: 0, attempt_t: null,
      attempts: 0, connect_t: null, recovered: null, connect_errors: 0, error: null,
      rejoined: null };
    return this.storm;
  }

  onMessage(message) {
    if (!message || message.room !== roomName(this.room)) {
      this.unexpected += 1;
      return;
    }
    this.seen.set(message.id, (this.seen.get(message.id) ?? 0) + 1);
    if (typeof message.seq === "number") {
      if (message.seq <= this.lastSeq) this.outOfOrder += 1;
      else if (this.lastSeq && message.prev !== this.lastSeq) this.prevBreaks += 1;
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
    state.connect_t ??= t; // the first connect after the kill
    state.recovered ??= recovered;
    if (watching) out({ event: "connect", i: this.index, t, recovered });
    if (!recovered) {
      // A fresh session has no rooms: join again, as an application would (what it missed
      // meanwhile is gone for it and shows up as lost).
      this.lastSeq = 0;
      this.socket.emit("room:join", { room: roomName(this.room) }, (ack) => {
        state.rejoined = ack?.ok === true;
      });
    }
  }

  start(timeoutMs) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(
        `client ${this.index}: no connect (last error: ${this.lastError ?? "none"})`)), timeoutMs);
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
      disconnects: s.disconnects ?? 0,
      attempt_t: s.attempt_t ?? null,
      attempts: s.attempts ?? 0,
      connect_t: s.connect_t ?? null,
      recovered: s.recovered ?? null,
      connect_errors: s.connect_errors ?? 0,
      error: s.error ?? null,
      rejoined: s.rejoined ?? null,
      received: this.seen.size,
      lost: this.missing(),
      dup,
      stray,
      unexpected: this.unexpected,
      out_of_order: this.outOfOrder,
      prev_breaks: this.prevBreaks,
    };
  }
}

// -- publisher --------------------------------------------------------------------------------

const pendingAcks = new Set();
const publishErrors = [];
const acked = Array.from({ length: cfg.rooms }, () => []);

function connectPublisher(k) {
  const socket = io(cfg.url + cfg.namespace, {
    transports: ["websocket"],
    forceNew: true,
    auth: { token: tokens[cfg.first + k] },
  });
  const rooms = [];
  for (let r = k * ROOMS_PER_PUBLISHER; r < Math.min(cfg.rooms, (k + 1) * ROOMS_PER_PUBLISHER);
    r++) rooms.push(r);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`publisher ${k}: no connect`)), 30_000);
    socket.once("connect", async () => {
      for (const r of rooms) {
        const ack = await socket.emitWithAck("room:join", { room: roomName(r) });
        if (!ack?.ok) {
          reject(new Error(`publisher ${k}: join refused ${JSON.stringify(ack)}`));
          return;
        }
      }
      clearTimeout(timer);
      resolve({ socket, rooms });
    });
    socket.on("connect_error", (err) => log(`publisher ${k} connect_error: ${err.message}`));
  });
}

function publish(publishers, round) {
  for (const { socket, rooms } of publishers) {
    for (const k of rooms) {
      const id = `${cfg.run_tag}-${k}-${round}`;
      const send = socket
        .timeout(30_000)
        .emitWithAck("message:send", { room: roomName(k), id, text: `r${round}` })
        .then((ack) => {
          if (ack?.ok) acked[k].push(id);
          else publishErrors.push({ id, ack });
        })
        .catch((err) => publishErrors.push({ id, error: String(err) }))
        .finally(() => pendingAcks.delete(send));
      pendingAcks.add(send);
    }
  }
}

async function flush(timeoutMs) {
  const start = now();
  const deadline = start + timeoutMs;
  while (pendingAcks.size && now() < deadline) await Promise.race([...pendingAcks, sleep(50)]);
  out({ event: "flushed", expected: Object.fromEntries(acked.map((ids, k) => [k, ids])),
    pending_acks: pendingAcks.size, publish_errors: publishErrors.length,
    ms: Math.round(now() - start) });
}

async function publisherMain() {
  const setupStart = now();
  const publishers = await Promise.all(Array.from(
    { length: Math.ceil(cfg.rooms / ROOMS_PER_PUBLISHER) }, (_, k) => connectPublisher(k)));
  out({ event: "ready", role: "publisher", sockets: publishers.length,
    setup_ms: Math.round(now() - setupStart), clock_ms: now() });
  return {
    publish: (cmd) => publish(publishers, cmd.round),
    flush: (cmd) => void flush(cmd.timeout_ms),
    report: () => out({ event: "report", publish_errors: publishErrors,
      acked: acked.map((ids) => ids.length) }),
    quit: () => publishers.forEach(({ socket }) => socket.disconnect()),
  };
}

// -- clients ----------------------------------------------------------------------------------

async function awaitDelivery(clients, timeoutMs) {
  const start = now();
  const deadline = start + timeoutMs;
  let missing = 0;
  for (;;) {
    missing = 0;
    for (const client of clients) missing += client.missing();
    if (missing === 0 || now() >= deadline) break;
    await sleep(20);
  }
  out({ event: "delivered", complete: missing === 0, missing,
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

async function clientsMain() {
  if (tokens.length < cfg.first + cfg.count) {
    throw new Error(`need ${cfg.first + cfg.count} tokens, got ${tokens.length}`);
  }
  const setupStart = now();
  const clients = [];
  let next = cfg.first;
  const end = cfg.first + cfg.count;
  const worker = async () => {
    while (next < end) {
      const client = new Client(next++);
      clients.push(client);
      await client.start(cfg.connect_timeout_s * 1000);
    }
  };
  await Promise.all(Array.from({ length: cfg.connect_concurrency }, worker));
  clients.sort((a, b) => a.index - b.index);
  const version = createRequire(import.meta.url)("socket.io-client/package.json").version;
  out({ event: "ready", role: "clients", clients: clients.length,
    setup_ms: Math.round(now() - setupStart), clock_ms: now(),
    options: optionsInEffect(clients[0].socket), client_version: version,
    node: process.version });
  return {
    watch: () => {
      watching = true;
      out({ event: "watching", t: now() });
    },
    killed: (cmd) => out({ event: "killed", t0: cmd.t0, received_t: now() }),
    expect: (cmd) => {
      expected = Array.from({ length: cfg.rooms }, (_, k) => new Set(cmd.expected[k] ?? []));
      void awaitDelivery(clients, cmd.timeout_ms);
    },
    report: () => out({ event: "report", rows: clients.map((c) => c.row()) }),
    quit: () => clients.forEach((client) => client.socket.disconnect()),
  };
}

async function main() {
  const handlers = cfg.role === "publisher" ? await publisherMain() : await clientsMain();
  const quit = (code) => {
    handlers.quit();
    setTimeout(() => process.exit(code), 50);
  };
  const rl = createInterface({ input: process.stdin });
  rl.on("close", () => quit(0));
  rl.on("line", (line) => {
    if (!line.trim()) return;
    const cmd = JSON.parse(line);
    if (cmd.cmd === "quit") quit(0);
    else if (handlers[cmd.cmd]) handlers[cmd.cmd](cmd);
    else log(`unknown command ${line}`);
  });
}

main().catch((err) => {
  out({ event: "fatal", error: String(err?.stack ?? err) });
  process.exit(1);
});
