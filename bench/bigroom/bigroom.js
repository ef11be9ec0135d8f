'use strict';
// One big room: `members` sockets (member i on urls[i % urls.length]) all join ONE room of the
// /chat namespace; one publisher socket per gateway (also joined, its own copies not counted)
// publishes `message:send` open loop at `rate` messages/s for `duration_s`, alternating
// publishers. For every message it records when each member got it, so it reports both the
// per-delivery latency and the time until the LAST of the members had the message.
//
// Wire subset (same as ../loadgen/loadgen.js): open packet, ping `2` -> pong `3`, namespace
// CONNECT with the token, room:join with an ack, message:send with an ack, message:received.
//
// `node bigroom.js --config FILE`. stdout: one JSON object per line:
//   {"event":"ready",...}         every connection joined
//   {"event":"window_start"} ... {"event":"window_end"}   the publish window (CPU is sampled
//                                 by the runner on these two lines)
//   {"event":"result",...}        after every expected delivery arrived or grace_s passed
// then it waits for `quit` (or EOF) on stdin. It exits by itself after max_lifetime_s.

const fs = require('fs');
const readline = require('readline');
const { performance } = require('perf_hooks');
const WebSocket = require('ws');

const DEFAULTS = {
  urls: ['ws://127.0.0.1:8001'],
  path: '/socket.io/?EIO=4&transport=websocket',
  namespace: '/chat',
  room: 'room:big',
  members: 4000,
  tokens_file: null, // members' tokens first, then one per publisher
  rate: 20, // messages/s, over all publishers
  duration_s: 10,
  grace_s: 10,
  text_bytes: 100,
  connect_concurrency: 100,
  connect_timeout_s: 60,
  max_lifetime_s: 120,
  run_tag: 'big',
};

const cfg = (() => {
  const i = process.argv.indexOf('--config');
  const fromFile = i >= 0 ? JSON.parse(fs.readFileSync(process.argv[i + 1], 'utf8')) : {};
  return { ...DEFAULTS, ...fromFile };
})();
const tokens = fs.readFileSync(cfg.tokens_file, 'utf8').split('\n').filter(Boolean);
const G = cfg.urls.length;
const M = cfg.members;
const P = G; // one publisher per gateway
if (tokens.length < M + P) throw new Error(`need ${M + P} tokens, got ${tokens.length}`);

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const log = (...a) => process.stderr.write(`[bigroom] ${a.join(' ')}\n`);
const nowMs = () => performance.now();
setTimeout(() => { log('max lifetime reached'); process.exit(3); }, cfg.max_lifetime_s * 1000).unref();

const NSP = cfg.namespace;
const NSP_PREFIX = NSP === '/' ? '' : `${NSP},`;
const B = (s) => Buffer.from(s, 'latin1');
const PFX_RECEIVED = B(`42${NSP_PREFIX}["message:received"`);
const PFX_ACK = B(`43${NSP_PREFIX}`);
const TEXT_KEY = B('"text":"B');
const SEQ_KEY = B('"seq":');
const OK_TRUE = B('"ok":true');

const MAX_MSGS = Math.ceil(cfg.rate * cfg.duration_s) + 1;
const sentAt = new Float64Array(MAX_MSGS); // ms, performance clock
const pubOf = new Uint8Array(MAX_MSGS);
const count = new Uint32Array(MAX_MSGS); // member deliveries per message (duplicates included)
const lastAt = new Float64Array(MAX_MSGS);
const firstAt = new Float64Array(MAX_MSGS).fill(Infinity);
// got[member * MAX_MSGS + k]: times member got message k (saturating at 255)
const got = new Uint8Array(M * MAX_MSGS);
const lat = new Float64Array(M * MAX_MSGS); // per-delivery latency, ms
let nLat = 0;
const sameGw = new Float64Array(M * MAX_MSGS);
let nSame = 0;
const crossGw = new Float64Array(M * MAX_MSGS);
let nCross = 0;
let sent = 0;
let windowOpen = false;
const totals = { self: 0, bad: 0, other: 0, out_of_order: 0, closed: 0, close_codes: {},
  acks_ok: 0, acks_err: 0, ack_errors: [], late_frames: 0 };
const ackLat = [];

function readInt(buf, i) {
  let v = 0;
  const s = i;
  for (; i < buf.length; i++) {
    const c = buf[i];
    if (c < 48 || c > 57) break;
    v = v * 10 + (c - 48);
  }
  return i === s ? null : [v, i];
}

function onDelivery(conn, buf, t) {
  const ti = buf.indexOf(TEXT_KEY, PFX_RECEIVED.length);
  const r = ti < 0 ? null : readInt(buf, ti + TEXT_KEY.length);
  if (!r || r[0] >= sent) { totals.bad++; return; }
  const k = r[0];
  if (conn.role === 'pub') { totals.self++; return; }
  const si = buf.indexOf(SEQ_KEY, PFX_RECEIVED.length);
  const sq = si < 0 ? null : readInt(buf, si + SEQ_KEY.length);
  if (sq) {
    if (sq[0] <= conn.lastSeq) totals.out_of_order++;
    else conn.lastSeq = sq[0];
  }
  const slot = conn.i * MAX_MSGS + k;
  if (got[slot] < 255) got[slot]++;
  count[k]++;
  if (got[slot] > 1) return; // a duplicate: counted, not timed
  if (t > lastAt[k]) lastAt[k] = t;
  if (t < firstAt[k]) firstAt[k] = t;
  const d = t - sentAt[k];
  lat[nLat++] = d;
  if (conn.gw === pubOf[k]) sameGw[nSame++] = d;
  else crossGw[nCross++] = d;
}

function onAck(conn, buf, t) {
  const r = readInt(buf, PFX_ACK.length);
  if (!r) return;
  const at = conn.pending.get(r[0]);
  if (at === undefined) return;
  conn.pending.delete(r[0]);
  ackLat.push(t - at);
  if (buf.indexOf(OK_TRUE, r[1]) >= 0) totals.acks_ok++;
  else {
    totals.acks_err++;
    if (totals.ack_errors.length < 5) totals.ack_errors.push(buf.toString('utf8', 0, 300));
  }
}

const conns = [];
for (let i = 0; i < M + P; i++) {
  const pub = i >= M;
  const gw = pub ? i - M : i % G;
  conns.push({ i, role: pub ? 'pub' : 'member', gw, url: cfg.urls[gw] + cfg.path,
    token: tokens[i], ws: null, state: 'new', nextAck: 1, pending: new Map(), lastSeq: -1 });
}

function openConn(conn, timeoutMs) {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) {
        try { conn.ws.terminate(); } catch (_) { /* gone */ }
        reject(new Error(`conn ${conn.i} (${conn.url}): ${err}`));
      } else resolve();
    };
    const timer = setTimeout(() => finish(`not usable after ${timeoutMs} ms (${conn.state})`), timeoutMs);
    const ws = new WebSocket(conn.url, { headers: { Authorization: `Bearer ${conn.token}` },
      perMessageDeflate: false, skipUTF8Validation: true });
    conn.ws = ws;
    conn.state = 'open-wait';
    ws.on('unexpected-response', (_q, res) => finish(`HTTP ${res.statusCode} on upgrade`));
    ws.on('error', (e) => finish(`socket error ${e.message}`));
    ws.on('close', (code, reason) => {
      if (!done) { finish(`closed ${code} ${reason} during setup (${conn.state})`); return; }
      totals.closed++;
      totals.close_codes[code] = (totals.close_codes[code] || 0) + 1;
    });
    ws.on('message', (buf, isBinary) => {
      const t = nowMs();
      if (buf.length === 1 && buf[0] === 50) { ws.send('3'); return; }
      if (conn.state === 'ready') {
        if (buf.compare(PFX_RECEIVED, 0, PFX_RECEIVED.length, 0, PFX_RECEIVED.length) === 0) onDelivery(conn, buf, t);
        else if (buf.compare(PFX_ACK, 0, PFX_ACK.length, 0, PFX_ACK.length) === 0) onAck(conn, buf, t);
        else totals.other++;
        return;
      }
      if (isBinary) return finish('unexpected binary frame');
      const s = buf.toString('utf8');
      if (conn.state === 'open-wait') {
        if (s[0] !== '0') return finish(`expected open packet, got ${s.slice(0, 200)}`);
        conn.state = 'connect-wait';
        ws.send(`40${NSP_PREFIX}${JSON.stringify({ token: conn.token })}`);
      } else if (conn.state === 'connect-wait') {
        if (s.startsWith(`40${NSP_PREFIX}`)) {
          conn.state = 'join-wait';
          conn.joinAck = conn.nextAck++;
          ws.send(`42${NSP_PREFIX}${conn.joinAck}${JSON.stringify(['room:join', { room: cfg.room }])}`);
        } else if (s.startsWith(`44${NSP_PREFIX}`)) finish(`CONNECT_ERROR ${s.slice(0, 300)}`);
      } else if (conn.state === 'join-wait' && s.startsWith(`43${NSP_PREFIX}${conn.joinAck}[`)) {
        if (!s.includes('"ok":true')) return finish(`join refused: ${s.slice(0, 300)}`);
        conn.state = 'ready';
        finish();
      }
    });
  });
}

async function connectAll() {
  const t0 = nowMs();
  let next = 0;
  const errors = [];
  const worker = async () => {
    while (next < conns.length && errors.length === 0) {
      const c = conns[next++];
      try { await openConn(c, cfg.connect_timeout_s * 1000); } catch (e) { errors.push(e.message); }
    }
  };
  await Promise.all(Array.from({ length: cfg.connect_concurrency }, worker));
  return { errors, ms: nowMs() - t0 };
}

const PAD = 'x'.repeat(4096);
function publish(k) {
  const p = k % P;
  const conn = conns[M + p];
  const ack = conn.nextAck++;
  const head = `42${NSP_PREFIX}${ack}["message:send",{"room":"${cfg.room}","id":"${cfg.run_tag}-${k}","text":"B${k}:`;
  const frame = `${head}${PAD.slice(0, Math.max(0, cfg.text_bytes - 12))}"}]`;
  pubOf[k] = conn.gw;
  sent = k + 1;
  const t = nowMs();
  sentAt[k] = t;
  conn.pending.set(ack, t);
  conn.ws.send(frame);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function quantiles(arr, n) {
  if (n === 0) return null;
  const a = Float64Array.from(arr.subarray ? arr.subarray(0, n) : arr.slice(0, n)).sort();
  const q = (x) => Math.round(a[Math.min(n - 1, Math.max(0, Math.ceil(x * n) - 1))] * 1000) / 1000;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += a[i];
  return { count: n, p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999), max: q(1),
    mean: Math.round((sum / n) * 1000) / 1000 };
}

async function run() {
  out({ event: 'window_start' });
  const t0 = nowMs();
  const durMs = cfg.duration_s * 1000;
  let maxGap = 0;
  let last = t0;
  for (;;) {
    const now = nowMs();
    maxGap = Math.max(maxGap, now - last);
    last = now;
    const due = Math.min(MAX_MSGS, Math.floor((Math.min(now - t0, durMs) / 1000) * cfg.rate));
    while (sent < due) publish(sent);
    if (now - t0 >= durMs) break;
    await sleep(1);
  }
  const windowEnd = nowMs();
  out({ event: 'window_end' });
  const expected = sent * M;
  let delivered = () => { let s = 0; for (let k = 0; k < sent; k++) s += Math.min(count[k], M); return s; };
  while (delivered() < expected && nowMs() - windowEnd < cfg.grace_s * 1000) await sleep(20);
  const drainMs = nowMs() - windowEnd;
  await sleep(200); // late duplicates, if any
  let lost = 0;
  let dup = 0;
  for (let m = 0; m < M; m++) {
    const base = m * MAX_MSGS;
    for (let k = 0; k < sent; k++) {
      const g = got[base + k];
      if (g === 0) lost++;
      else dup += g - 1;
    }
  }
  const complete = [];
  const first = [];
  for (let k = 0; k < sent; k++) {
    if (count[k] >= M) complete.push(lastAt[k] - sentAt[k]);
    if (firstAt[k] !== Infinity) first.push(firstAt[k] - sentAt[k]);
  }
  const perGw = new Array(G).fill(0);
  for (const c of conns) if (c.role === 'member') perGw[c.gw]++;
  let pendingAcks = 0;
  for (let p = 0; p < P; p++) pendingAcks += conns[M + p].pending.size;
  return {
    event: 'result',
    members: M,
    members_per_gateway: perGw,
    publishers: P,
    published: sent,
    publish_window_s: (windowEnd - t0) / 1000,
    publish_rate: sent / ((windowEnd - t0) / 1000),
    expected,
    delivered: nLat,
    lost,
    dup,
    out_of_order: totals.out_of_order,
    messages_complete: complete.length,
    delivery_latency_ms: quantiles(lat, nLat),
    same_gateway_latency_ms: quantiles(sameGw, nSame),
    cross_gateway_latency_ms: quantiles(crossGw, nCross),
    last_member_latency_ms: quantiles(complete, complete.length),
    first_member_latency_ms: quantiles(first, first.length),
    ack_latency_ms: quantiles(ackLat, ackLat.length),
    acks_ok: totals.acks_ok,
    acks_err: totals.acks_err,
    acks_pending: pendingAcks,
    ack_errors: totals.ack_errors,
    self_deliveries: totals.self,
    bad_frames: totals.bad,
    other_frames: totals.other,
    closed: totals.closed,
    close_codes: totals.close_codes,
    drain_ms: drainMs,
    max_tick_gap_ms: maxGap,
  };
}

function shutdown(code) {
  for (const c of conns) { try { if (c.ws) c.ws.terminate(); } catch (_) { /* gone */ } }
  process.exit(code);
}

async function main() {
  const setup = await connectAll();
  if (setup.errors.length) {
    out({ event: 'fatal', stage: 'connect', errors: setup.errors.slice(0, 5) });
    shutdown(2);
    return;
  }
  out({ event: 'ready', connections: conns.length, setup_ms: setup.ms });
  const rl = readline.createInterface({ input: process.stdin });
  let go = null;
  const started = new Promise((r) => { go = r; });
  rl.on('line', (line) => {
    const cmd = line.trim();
    if (cmd === 'go') go();
    else if (cmd === 'quit') shutdown(0);
  });
  rl.on('close', () => shutdown(0));
  await started;
  out(await run());
}

main().catch((e) => {
  out({ event: 'fatal', stage: 'main', errors: [String(e && e.stack ? e.stack : e)] });
  shutdown(1);
});
