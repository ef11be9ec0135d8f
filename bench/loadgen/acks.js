'use strict';
// Acked-event load generator (the application-hooks benchmark, bench/hooks.py).
//
// One Node process holds `connections` sockets, alternating over `urls`, in one namespace, and
// emits `event` {id, qty} with an ack id, open loop: the aggregate rate is spread round-robin
// over the sockets and the sender catches up on its schedule every ~1 ms, never waiting for an
// ack. Each ack is timed from the frame's hand-off to `ws.send` to its arrival (one monotonic
// clock) and checked: its first argument must be {ok: true, id: <the id sent>}.
//
// Wire subset (raw `ws`, as loadgen.js): the open packet, `2` answered with `3`, CONNECT
// `40<nsp>,{"token":…}` (the token also in `Authorization: Bearer` on the upgrade) ->
// `40<nsp>,{"sid":…}`, `42<nsp>,<ack>["<event>",{"id":…,"qty":…}]` -> `43<nsp>,<ack>[…]`.
//
// Control: `node acks.js --config FILE` (JSON, see DEFAULTS). Prints {"event":"ready",...}
// once every socket is connected, then reads JSON commands on stdin, one per line:
//   {"cmd":"step","id":N,"rate":R,"duration_s":D,"grace_s":G,"settle_s":S}
//       wait (<= S s) for acks still owed by earlier steps, print {"event":"window_start"},
//       emit R events/s for D s, print {"event":"window_end"}, wait until every ack of the
//       step arrived or G s passed, print {"event":"step_result",...}.
//   {"cmd":"quit"} (or EOF): close everything and exit.
// Every stdout line is one JSON object; diagnostics go to stderr. The process exits by itself
// after `max_lifetime_s` whatever happens.

const fs = require('fs');
const readline = require('readline');
const { performance } = require('perf_hooks');
const WebSocket = require('ws');
const { Histogram } = require('./histogram');

const DEFAULTS = {
  urls: ['ws://127.0.0.1:8001'],
  path: '/socket.io/?EIO=4&transport=websocket',
  namespace: '/bench',
  event: 'order:place',
  connections: 200,
  tokens_file: null, // one token per line, at least `connections`
  connect_concurrency: 50,
  connect_timeout_s: 30,
  max_lifetime_s: 600,
  run_tag: 'bench',
};

const nowUs = () => performance.now() * 1000;
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const log = (...args) => process.stderr.write(`[acks] ${args.join(' ')}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const cfg = { ...DEFAULTS };
{
  const i = process.argv.indexOf('--config');
  if (i >= 0) Object.assign(cfg, JSON.parse(fs.readFileSync(process.argv[i + 1], 'utf8')));
}
const TOKENS = fs.readFileSync(cfg.tokens_file, 'utf8').split('\n').filter(Boolean);
if (TOKENS.length < cfg.connections) {
  throw new Error(`need ${cfg.connections} tokens, got ${TOKENS.length}`);
}
const NSP = cfg.namespace === '/' ? '' : `${cfg.namespace},`;
const ACK_PREFIX = `43${NSP}`;
const EVENT = JSON.stringify(cfg.event);

setTimeout(() => { log(`max lifetime ${cfg.max_lifetime_s}s reached`); process.exit(3); },
  cfg.max_lifetime_s * 1000).unref();

const conns = [];
const totals = { closed: 0, close_codes: {}, other_frames: 0, late_acks: 0 };
let step = null;
let emitted = 0; // event ids are `<run_tag>-<n>`, unique over the run

function newStep(id) {
  return { id, hist: new Histogram(), ok: 0, err: 0, mismatched: 0, errors: [], closed: 0,
    sent: 0, owed: 0 };
}

function onAck(conn, text, t) {
  const open = text.indexOf('[', ACK_PREFIX.length);
  const ackId = Number(text.slice(ACK_PREFIX.length, open));
  const pending = conn.pending.get(ackId);
  if (pending === undefined) { totals.late_acks++; return; }
  conn.pending.delete(ackId);
  const s = pending.step;
  s.owed--;
  s.hist.add(t - pending.t);
  let first = null;
  try { first = JSON.parse(text.slice(open))[0]; } catch (_) { /* counted below */ }
  if (first && first.ok === true && first.id === pending.id) {
    s.ok++;
    return;
  }
  if (first && first.ok === true) s.mismatched++;
  else s.err++;
  if (s.errors.length < 5) s.errors.push(text.slice(0, 300));
}

function onFrame(conn, buf, finish) {
  const t = nowUs();
  const text = buf.toString('utf8');
  if (text === '2') { conn.ws.send('3'); return; }
  if (conn.state === 'ready') {
    if (text.startsWith(ACK_PREFIX)) onAck(conn, text, t);
    else totals.other_frames++;
  } else if (conn.state === 'open-wait') {
    if (text[0] !== '0') { finish(`expected the open packet, got ${text.slice(0, 200)}`); return; }
    conn.state = 'connect-wait';
    conn.ws.send(`40${NSP}${JSON.stringify({ token: conn.token })}`);
  } else if (text.startsWith(`40${NSP}`)) {
    conn.state = 'ready';
    finish();
  } else if (text.startsWith(`44${NSP}`)) {
    finish(`CONNECT_ERROR ${text.slice(0, 300)}`);
  }
}

function openConn(conn) {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (!err) { resolve(); return; }
      try { conn.ws.terminate(); } catch (_) { /* gone */ }
      reject(new Error(`conn ${conn.i} (${conn.url}): ${err}`));
    };
    const timer = setTimeout(() => finish(`not connected after ${cfg.connect_timeout_s} s`),
      cfg.connect_timeout_s * 1000);
    const ws = new WebSocket(conn.url, { headers: { Authorization: `Bearer ${conn.token}` },
      perMessageDeflate: false });
    conn.ws = ws;
    ws.on('unexpected-response', (_req, res) => finish(`HTTP ${res.statusCode} on upgrade`));
    ws.on('error', (e) => finish(`socket error ${e.message}`));
    ws.on('message', (buf) => onFrame(conn, buf, finish));
    ws.on('close', (code) => {
      if (!done) { finish(`closed ${code} during setup`); return; }
      totals.closed++;
      totals.close_codes[code] = (totals.close_codes[code] || 0) + 1;
      if (step) step.closed++;
    });
  });
}

async function connectAll() {
  for (let i = 0; i < cfg.connections; i++) {
    conns.push({ i, url: cfg.urls[i % cfg.urls.length] + cfg.path, token: TOKENS[i], ws: null,
      state: 'open-wait', nextAck: 1, pending: new Map() });
  }
  const t0 = performance.now();
  let next = 0;
  const errors = [];
  const worker = async () => {
    while (next < conns.length && errors.length === 0) {
      try { await openConn(conns[next++]); } catch (e) { errors.push(e.message); }
    }
  };
  await Promise.all(Array.from({ length: cfg.connect_concurrency }, worker));
  return { errors, ms: performance.now() - t0 };
}

function emit(conn, s) {
  const ack = conn.nextAck++;
  const id = `${cfg.run_tag}-${emitted++}`;
  const frame = `42${NSP}${ack}[${EVENT},{"id":"${id}","qty":${1 + (ack % 9)}}]`;
  conn.pending.set(ack, { t: nowUs(), id, step: s });
  s.sent++;
  s.owed++;
  conn.ws.send(frame);
}

function owed() {
  let n = 0;
  for (const c of conns) n += c.pending.size;
  return n;
}

// Acks that never came: dropped from the books so a late one counts as late, not as this step's.
function forget(s) {
  let missing = 0;
  for (const c of conns) {
    for (const [ack, p] of c.pending) {
      if (p.step === s) { c.pending.delete(ack); missing++; }
    }
  }
  return missing;
}

async function runStep(cmd) {
  const t0settle = performance.now();
  while (owed() > 0 && performance.now() - t0settle < (cmd.settle_s ?? 5) * 1000) await sleep(10);
  const s = newStep(cmd.id);
  step = s;
  out({ event: 'window_start', id: cmd.id });
  const durationMs = cmd.duration_s * 1000;
  const t0 = performance.now();
  let rr = 0;
  let maxGap = 0;
  let last = t0;
  for (;;) {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
    const due = Math.floor((Math.min(now - t0, durationMs) / 1000) * cmd.rate);
    while (s.sent < due) {
      emit(conns[rr], s);
      rr = (rr + 1) % conns.length;
    }
    if (now - t0 >= durationMs) break;
    await sleep(1);
  }
  const windowEnd = performance.now();
  out({ event: 'window_end', id: cmd.id });
  while (s.owed > 0 && performance.now() - windowEnd < (cmd.grace_s ?? 3) * 1000) await sleep(2);
  const drainMs = performance.now() - windowEnd;
  const missing = forget(s);
  step = null;
  const windowS = (windowEnd - t0) / 1000;
  return {
    event: 'step_result', id: cmd.id, target_rate: cmd.rate, duration_s: windowS,
    sent: s.sent, send_rate: s.sent / windowS, acks_ok: s.ok, acks_err: s.err,
    acks_mismatched: s.mismatched, acks_missing: missing, ack_errors: s.errors,
    acked_per_s: s.ok / windowS, latency_ms: s.hist.summary(), drain_ms: drainMs,
    closed_during_step: s.closed, closed_total: totals.closed, close_codes: totals.close_codes,
    late_acks_total: totals.late_acks, other_frames_total: totals.other_frames,
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
  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let cmd;
    try { cmd = JSON.parse(line); } catch (e) {
      out({ event: 'error', message: `bad command: ${e.message}` });
      continue;
    }
    if (cmd.cmd === 'quit') break;
    if (cmd.cmd === 'step') out(await runStep(cmd));
    else out({ event: 'error', message: `unknown command ${cmd.cmd}` });
  }
  shutdown(0);
}

main().catch((e) => {
  out({ event: 'fatal', stage: 'main', errors: [String(e && e.stack ? e.stack : e)] });
  shutdown(1);
});
