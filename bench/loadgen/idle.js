'use strict';
// Idle-connection driver for bench/memory.py (scenario S2 of shared/peers.md).
//
// One Node process, raw `ws`, the load generators' wire subset: upgrade (token in
// `Authorization: Bearer`), the open packet, `40/chat,{"token":...}` -> `40/chat,{"sid":...}`,
// `room:join` with an ack -> `43/chat,<id>[{"ok":true,...}]`; then the connection stays idle,
// answering pings. Connection i joins room i % rooms and goes to urls[floor(i / rooms) % n],
// so every room has members on every instance.
//
// `node idle.js --config FILE` (JSON, see DEFAULTS) prints {"event":"ready"}, then reads JSON
// commands, one per line, on stdin:
//   {"cmd":"open"}   opens `count` connections with `concurrency` handshakes in flight; a
//                    connection counts as open once its join is acked. Prints
//                    {"event":"opened", opened, failed, failure_reasons, seconds, per_s,
//                     latency_ms: {p50, p90, p99, max}} (latency: new WebSocket -> join ack).
//   {"cmd":"count"}  prints {"event":"counts", open, closed, frames, bytes}: frames received
//                    after the join (presence announcements, pings) and sockets still open.
//   {"cmd":"quit"}   (or EOF): close everything and exit.
// The process exits by itself after `max_lifetime_s`.

const fs = require('fs');
const { performance } = require('perf_hooks');
const WebSocket = require('ws');
const { out, serveCommands } = require('../lib/jsonl');

const DEFAULTS = {
  urls: ['ws://127.0.0.1:8001'],
  path: '/socket.io/?EIO=4&transport=websocket',
  namespace: '/chat',
  tokens_file: null,
  count: 10000,
  rooms: 10,
  room_prefix: 'room:idle-',
  concurrency: 200,
  handshake_timeout_s: 30,
  max_lifetime_s: 600,
};

const log = (...args) => process.stderr.write(`[idle] ${args.join(' ')}\n`);

const i = process.argv.indexOf('--config');
const cfg = { ...DEFAULTS, ...(i >= 0 ? JSON.parse(fs.readFileSync(process.argv[i + 1], 'utf8')) : {}) };
const tokens = fs.readFileSync(cfg.tokens_file, 'utf8').split('\n').filter(Boolean);
if (tokens.length < cfg.count) throw new Error(`need ${cfg.count} tokens, got ${tokens.length}`);
const NSP = cfg.namespace === '/' ? '' : `${cfg.namespace},`;

setTimeout(() => { log('max lifetime reached'); process.exit(3); }, cfg.max_lifetime_s * 1000).unref();

const sockets = [];
const totals = { frames: 0, bytes: 0, closed: 0 };

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const k = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return Math.round(sorted[k] * 100) / 100;
}

// Resolves {ok: true, ms} once the join is acked, or {ok: false, reason}.
function openOne(n) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const url = cfg.urls[Math.floor(n / cfg.rooms) % cfg.urls.length] + cfg.path;
    const room = `${cfg.room_prefix}${n % cfg.rooms}`;
    const ws = new WebSocket(url, {
      headers: { Authorization: `Bearer ${tokens[n]}` },
      perMessageDeflate: false,
      skipUTF8Validation: true,
    });
    let state = 'open-wait';
    let done = false;
    const finish = (result) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (!result.ok) {
        ws.on('error', () => {});
        ws.terminate();
      }
      resolve(result);
    };
    const timer = setTimeout(() => finish({ ok: false, reason: `timeout in ${state}` }),
      cfg.handshake_timeout_s * 1000);
    ws.on('unexpected-response', (_req, res) => finish({ ok: false, reason: `HTTP ${res.statusCode}` }));
    ws.on('error', (err) => finish({ ok: false, reason: `error ${err.code || err.message}` }));
    ws.on('close', (code) => {
      if (done) totals.closed += 1;
      else finish({ ok: false, reason: `closed ${code} in ${state}` });
    });
    ws.on('message', (buf) => {
      if (buf.length === 1 && buf[0] === 50 /* '2' */) { ws.send('3'); return; }
      if (state === 'idle') {
        totals.frames += 1;
        totals.bytes += buf.length;
        return;
      }
      const s = buf.toString('utf8', 0, Math.min(buf.length, 400));
      if (state === 'open-wait') {
        if (s[0] !== '0') return finish({ ok: false, reason: 'no open packet' });
        state = 'connect-wait';
        ws.send(`40${NSP}${JSON.stringify({ token: tokens[n] })}`);
      } else if (state === 'connect-wait') {
        if (s.startsWith(`40${NSP}`)) {
          state = 'join-wait';
          ws.send(`42${NSP}1${JSON.stringify(['room:join', { room }])}`);
        } else if (s.startsWith(`44${NSP}`)) {
          finish({ ok: false, reason: `connect_error ${s.slice(0, 120)}` });
        }
      } else if (state === 'join-wait' && s.startsWith(`43${NSP}1[`)) {
        if (!s.includes('"ok":true')) return finish({ ok: false, reason: `join refused ${s.slice(0, 120)}` });
        state = 'idle';
        sockets.push(ws);
        finish({ ok: true, ms: performance.now() - t0 });
      }
    });
  });
}

async function openAll() {
  const times = [];
  const reasons = {};
  let failed = 0;
  let next = 0;
  const t0 = performance.now();
  const worker = async () => {
    while (next < cfg.count) {
      const result = await openOne(next++);
      if (result.ok) times.push(result.ms);
      else {
        failed += 1;
        reasons[result.reason] = (reasons[result.reason] || 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(cfg.concurrency, cfg.count) }, worker));
  const seconds = (performance.now() - t0) / 1000;
  times.sort((a, b) => a - b);
  out({
    event: 'opened',
    opened: times.length,
    failed,
    failure_reasons: reasons,
    seconds,
    per_s: Math.round((times.length / seconds) * 10) / 10,
    latency_ms: {
      p50: percentile(times, 50), p90: percentile(times, 90), p99: percentile(times, 99),
      max: percentile(times, 100),
    },
  });
}

function quit() {
  for (const ws of sockets) ws.terminate();
  process.exit(0);
}

function counts() {
  const open = sockets.filter((ws) => ws.readyState === WebSocket.OPEN).length;
  out({ event: 'counts', open, closed: totals.closed, frames: totals.frames, bytes: totals.bytes });
}

serveCommands({ open: openAll, count: counts }, quit);
