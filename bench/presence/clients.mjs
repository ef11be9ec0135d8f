// Rolling-restart clients for bench/presence.py: N unmodified socket.io-client sockets in this
// one node process, every one through the runner's TCP proxy (the "load balancer").
//
// `node clients.mjs --config FILE` (JSON, see DEFAULTS). Client i connects to `url` +
// namespace with `transports: ["websocket"]`, `forceNew: true` (one Engine.IO connection per
// socket), `auth: {token}` and `client_options` (reconnection overrides; empty = the library's
// own defaults), then joins `rooms_per_client` rooms: room (i + j * floor(rooms /
// rooms_per_client)) mod rooms for j = 0.. (client i mod rooms when there is one each). On a
// reconnect that was not recovered (`socket.recovered` false) it joins them again, as an
// application would; a recovered socket got its rooms back from the server.
//
// socket.io-client is the copy bench/recovery installed (`npm ci --prefix bench/recovery`),
// so this folder needs no install of its own.
//
// Once all are in it prints {"event":"ready",...} and reads commands on stdin, one JSON object
// a line:
//   {"cmd":"watch"}   from now on print every disconnect and (re)connect; answers
//                     {"event":"watching"}; the presence events clients receive are counted
//                     from here on (the totals since start are kept apart)
//   {"cmd":"report"}  print {"event":"report",...}: connected, recovered, rejoins, events
//   {"cmd":"quit"} (or EOF) close everything and exit
// Every stdout line is one JSON object; diagnostics go to stderr. The process exits by itself
// after `max_lifetime_s` whatever happens.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";

const requireFromRecovery = createRequire(new URL("../recovery/package.json", import.meta.url));
const { io } = requireFromRecovery("socket.io-client");
const clientVersion = requireFromRecovery("socket.io-client/package.json").version;

const DEFAULTS = {
  url: "http://127.0.0.1:8001",
  namespace: "/chat",
  clients: 1000,
  rooms: 50,
  rooms_per_client: 1,
  room_prefix: "room:pr-",
  tokens_file: null,
  client_options: {},
  connect_concurrency: 50,
  connect_timeout_s: 120,
  max_lifetime_s: 300,
};
const WATCHED = ["presence:update", "typing:start", "typing:stop"];

const now = () => performance.timeOrigin + performance.now();
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const log = (...args) => process.stderr.write(`[clients] ${args.join(" ")}\n`);

const configPath = process.argv[process.argv.indexOf("--config") + 1];
const cfg = { ...DEFAULTS, ...JSON.parse(readFileSync(configPath, "utf8")) };
const tokens = readFileSync(cfg.tokens_file, "utf8").split("\n").filter(Boolean);
if (tokens.length < cfg.clients) throw new Error(`need ${cfg.clients} tokens, got ${tokens.length}`);
if (cfg.rooms_per_client < 1 || cfg.rooms_per_client > cfg.rooms) {
  throw new Error("rooms_per_client must be between 1 and rooms");
}
setTimeout(() => {
  log(`max lifetime ${cfg.max_lifetime_s} s reached, exiting`);
  process.exit(3);
}, cfg.max_lifetime_s * 1000).unref();

let watching = false;
const received = { total: {}, watched: {} }; // event kind -> count, since start / since watch
const stride = Math.floor(cfg.rooms / cfg.rooms_per_client);

function countEvent(name, data) {
  let kind = name;
  if (name === "presence:update") kind = data?.status ?? (data?.count !== undefined ? "count" : "?");
  received.total[kind] = (received.total[kind] ?? 0) + 1;
  if (watching) received.watched[kind] = (received.watched[kind] ?? 0) + 1;
}

class Client {
  constructor(index) {
    this.index = index;
    this.rooms = Array.from({ length: cfg.rooms_per_client },
      (_, j) => cfg.room_prefix + ((index + j * stride) % cfg.rooms));
    this.connects = 0;
    this.recovered = null;
    this.rejoinFailures = 0;
    this.socket = io(cfg.url + cfg.namespace, {
      ...cfg.client_options,
      transports: ["websocket"],
      forceNew: true,
      auth: { token: tokens[index] },
    });
    for (const name of WATCHED) this.socket.on(name, (data) => countEvent(name, data));
    this.socket.on("connect", () => this.onConnect());
    this.socket.on("disconnect", (reason) => {
      if (watching) out({ event: "disconnect", i: index, t: now(), reason });
    });
    this.socket.on("connect_error", (err) => {
      if (watching) out({ event: "connect_error", i: index, t: now(), message: err.message });
    });
  }

  async joinAll() {
    for (const room of this.rooms) {
      const ack = await this.socket.timeout(30_000).emitWithAck("room:join", { room });
      if (!ack?.ok) throw new Error(`client ${this.index}: join ${room} refused ${JSON.stringify(ack)}`);
    }
  }

  onConnect() {
    this.connects += 1;
    if (this.connects === 1) {
      this.firstConnect?.();
      return;
    }
    const recovered = this.socket.recovered === true;
    this.recovered = recovered;
    out({ event: "connect", i: this.index, t: now(), recovered });
    if (!recovered) {
      this.joinAll().catch((err) => {
        this.rejoinFailures += 1;
        log(String(err));
      });
    }
  }

  start(timeoutMs) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`client ${this.index}: no connect`)),
        timeoutMs);
      this.firstConnect = () => {
        this.joinAll().then(() => {
          clearTimeout(timer);
          resolve();
        }, (err) => {
          clearTimeout(timer);
          reject(err);
        });
      };
    });
  }
}

async function main() {
  const setupStart = now();
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
  out({ event: "ready", clients: clients.length, setup_ms: Math.round(now() - setupStart),
    clock_ms: now(), client_version: clientVersion, node: process.version,
    options: (({ socket }) => ({
      reconnectionDelay: socket.io.reconnectionDelay(),
      reconnectionDelayMax: socket.io.reconnectionDelayMax(),
      randomizationFactor: socket.io.randomizationFactor(),
    }))(clients[0]) });

  const quit = (code) => {
    for (const client of clients) client.socket.disconnect();
    setTimeout(() => process.exit(code), 50);
  };
  const rl = createInterface({ input: process.stdin });
  rl.on("close", () => quit(0));
  rl.on("line", (line) => {
    if (!line.trim()) return;
    const cmd = JSON.parse(line);
    if (cmd.cmd === "watch") {
      watching = true;
      out({ event: "watching", t: now() });
    } else if (cmd.cmd === "report") {
      out({ event: "report",
        connected: clients.filter((c) => c.socket.connected).length,
        reconnected: clients.filter((c) => c.connects > 1).length,
        recovered: clients.filter((c) => c.recovered === true).length,
        rejoin_failures: clients.reduce((n, c) => n + c.rejoinFailures, 0),
        received_total: received.total, received_watched: received.watched });
    } else if (cmd.cmd === "quit") quit(0);
    else log(`unknown command ${line}`);
  });
}

main().catch((err) => {
  out({ event: "fatal", error: String(err?.stack ?? err) });
  process.exit(1);
});
