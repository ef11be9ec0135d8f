'use strict';
// Handshake-rate load generator and targeted-send receivers for bench/handshakes.py.
//
// One Node process, raw `ws`, the minimal Engine.IO v4 / Socket.IO v5 subset: the open packet
// `0{...}`, `2` answered with `3`, namespace CONNECT `40/chat,` -> `40/chat,{"sid":...}`
// (`44/chat,...` is a failure). The token goes in `Authorization: Bearer` on the upgrade.
//
// `node handshakes.js --max-seconds N` reads JSON commands, one per line, on stdin, and prints
// one JSON object per line on stdout:
//   {"cmd":"handshakes","url":U,"tokens_file":F,"concurrency":C,"duration_s":D}
//       (or "urls":[U1,U2,...]: handshake n goes to urls[n % length], a cluster's instances)
//       keeps C handshakes in flight for D s (each: upgrade, open packet, CONNECT, CONNECT
//       reply, close; the next one starts as soon as the previous reply arrived), prints
//       {"event":"window_start"}, {"event":"window_end"} and {"event":"handshake_result",...}.
//   {"cmd":"hold","url":U,"tokens_file":F,"count":N,"event_name":E}
//       connects N sockets to /chat (token i = user i) and keeps them; counts every
//       `42/chat,["E",...]` frame; prints {"event":"held","connected":..,"failed":..}.
//   {"cmd":"count"}  prints {"event":"counts","received":..,"per_socket_min":..,...}.
//   {"cmd":"quit"}   (or EOF): close everything and exit.
// The process also exits by itself after --max-seconds (default 180).

const fs = require('fs');
const { performance } = require('perf_hooks');
const WebSocket = require('ws');
const { out, serveCommands } = require('../lib/jsonl');

const PATH = '/socket.io/?EIO=4&transport=websocket';
const NSP = '/chat';
const HANDSHAKE_TIMEOUT_MS = 10000;

const log = (...args) => process.stderr.write(`[handshakes] ${args.join(' ')}\n`);

const maxIdx = process.argv.indexOf('--max-seconds');
const maxSeconds = maxIdx >= 0 ? Number(process.argv[maxIdx + 1]) : 180;
setTimeout(() => { log('max lifetime reached'); process.exit(3); }, maxSeconds * 1000).unref();

const readTokens = (file) => fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return Math.round(sorted[i] * 100) / 100;
}

// One socket through the handshake. Resolves {ok, ms, ws} or {ok:false, reason}.
function handshake(url, token, keep) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let done = false;
    const ws = new WebSocket(url + PATH, {
      headers: { Authorization: `Bearer ${token}` },
      perMessageDeflate: false,
    });
    const finish = (result) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (!result.ok || !keep) {
        ws.removeAllListeners('message');
        ws.on('error', () => {});
        if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
        else ws.close();
      }
      resolve(result);
    };
    const timer = setTimeout(() => finish({ ok: false, reason: 'timeout' }), HANDSHAKE_TIMEOUT_MS);
    let opened = false;
    ws.on('message', (raw) => {
      const data = raw.toString();
      if (!opened) {
        if (data[0] !== '0') return finish({ ok: false, reason: 'no open packet' });
        opened = true;
        ws.send(`40${NSP},`);
        return;
      }
      if (data === '2') { ws.send('3'); return; }
      if (data.startsWith(`40${NSP},`)) {
        const ok = data.includes('"sid"');
        return finish(ok ? { ok: true, ms: performance.now() - t0, ws }
          : { ok: false, reason: 'connect reply without sid' });
      }
      if (data.startsWith(`44${NSP},`)) return finish({ ok: false, reason: `connect_error ${data.slice(0, 120)}` });
    });
    ws.on('unexpected-response', (_req, res) => finish({ ok: false, reason: `HTTP ${res.statusCode}` }));
    ws.on('error', (err) => finish({ ok: false, reason: `error ${err.code || err.message}` }));
    ws.on('close', (code) => finish({ ok: false, reason: `closed ${code}` }));
  });
}

async function runHandshakes(cmd) {
  const tokens = readTokens(cmd.tokens_file);
  const urls = cmd.urls || [cmd.url];
  let next = 0;
  const times = [];
  const reasons = {};
  let failures = 0;
  let started = 0;
  let lateCompleted = 0;
  out({ event: 'window_start' });
  const t0 = performance.now();
  const end = t0 + cmd.duration_s * 1000;
  const worker = async () => {
    while (performance.now() < end) {
      const token = tokens[next % tokens.length];
      const url = urls[next % urls.length];
      next += 1;
      started += 1;
      const result = await handshake(url, token, false);
      const inWindow = performance.now() <= end;
      if (result.ok) {
        if (inWindow) times.push(result.ms); else lateCompleted += 1;
      } else {
        failures += 1;
        reasons[result.reason] = (reasons[result.reason] || 0) + 1;
      }
    }
  };
  const workers = [];
  for (let i = 0; i < cmd.concurrency; i += 1) workers.push(worker());
  await new Promise((r) => setTimeout(r, Math.max(0, end - performance.now())));
  out({ event: 'window_end' });
  await Promise.all(workers);
  const elapsed = (end - t0) / 1000;
  times.sort((a, b) => a - b);
  out({
    event: 'handshake_result',
    urls,
    concurrency: cmd.concurrency,
    duration_s: elapsed,
    started,
    completed: times.length,
    completed_after_window: lateCompleted,
    connects_per_s: Math.round((times.length / elapsed) * 10) / 10,
    failures,
    failure_reasons: reasons,
    tokens_wrapped: next > tokens.length,
    latency_ms: {
      p50: percentile(times, 50), p90: percentile(times, 90), p99: percentile(times, 99),
      max: percentile(times, 100),
      mean: times.length ? Math.round((times.reduce((a, b) => a + b, 0) / times.length) * 100) / 100 : null,
    },
  });
}

const held = [];
const received = [];

async function runHold(cmd) {
  const tokens = readTokens(cmd.tokens_file).slice(0, cmd.count);
  const prefix = `42${NSP},["${cmd.event_name}"`;
  const results = await Promise.all(tokens.map((token) => handshake(cmd.url, token, true)));
  const reasons = {};
  let failed = 0;
  results.forEach((result, i) => {
    if (!result.ok) {
      failed += 1;
      reasons[result.reason] = (reasons[result.reason] || 0) + 1;
      return;
    }
    received[i] = 0;
    const ws = result.ws;
    held.push(ws);
    ws.removeAllListeners('close');
    ws.on('close', (code) => log(`held socket ${i} closed ${code}`));
    ws.on('message', (raw) => {
      const data = raw.toString();
      if (data === '2') ws.send('3');
      else if (data.startsWith(prefix)) received[i] += 1;
    });
  });
  out({ event: 'held', connected: held.length, failed, failure_reasons: reasons });
}

function counts() {
  const values = received.filter((v) => v !== undefined);
  const open = held.filter((ws) => ws.readyState === WebSocket.OPEN).length;
  out({
    event: 'counts',
    received: values.reduce((a, b) => a + b, 0),
    per_socket_min: values.length ? Math.min(...values) : null,
    per_socket_max: values.length ? Math.max(...values) : null,
    open,
  });
}

function quit() {
  for (const ws of held) ws.terminate();
  process.exit(0);
}

serveCommands({ handshakes: runHandshakes, hold: runHold, count: counts }, quit);
