'use strict';
// Room fan-out load generator (scenario S1 of shared/peers.md).
//
// One Node process holds every connection: members (joined to one room each) and publishers
// (separate connections, one per room). It speaks just enough Engine.IO v4 / Socket.IO v5 over
// raw `ws`: open packet, pong, namespace CONNECT, room:join, message:send (open loop, acks
// counted, never awaited) and message:received (latency, loss, duplicates).
//
// Control: `node loadgen.js --config FILE`. The config is JSON (see DEFAULTS). After every
// connection is usable it prints `{"event":"ready",...}`; then it reads JSON commands, one per
// line, on stdin:
//   {"cmd":"step","id":N,"rate":R,"duration_s":D,"grace_s":G,"settle_s":S}
//       wait (<= S s) until earlier deliveries have drained, print {"event":"window_start"},
//       publish R messages/s (round-robin over the publishers) for D s, print
//       {"event":"window_end"}, wait until every expected delivery of this step arrived or G s
//       passed, print {"event":"step_result",...}.
//   {"cmd":"quit"}  (or EOF on stdin): close everything and exit.
// Every stdout line is one JSON object; diagnostics go to stderr. The process exits by itself
// after `max_lifetime_s` whatever happens.
//
// With `polling_share` > 0, that share of every room's members speaks HTTP long-polling
// instead (polling.js), to `polling_url` (a balancer in front of the servers), each bound to
// one of `polling_sources` in turn; publishers and the other members stay on WebSocket, spread
// over `urls`. Latency is then also reported per transport.

const fs = require('fs');
const readline = require('readline');
const { performance } = require('perf_hooks');
const WebSocket = require('ws');
const { Histogram } = require('./histogram');
const { PollingLink } = require('./polling');

const DEFAULTS = {
  urls: ['ws://127.0.0.1:8001'], // connection i goes to urls[gatewayOf(i) % urls.length]
  path: '/socket.io/?EIO=4&transport=websocket',
  namespace: '/chat',
  send_event: 'message:send', // what publishers emit ({room, id, text} with an ack id)
  receive_event: 'message:received', // what members get for it ({room, id, from, text, ...})
  rooms: 10,
  members_per_room: 100,
  publishers: 10, // publisher p publishes to room p % rooms
  room_prefix: 'room:bench-',
  tokens: null, // members' tokens first, then publishers'; or tokens_file (one per line)
  tokens_file: null,
  frame_bytes: 110, // target size of a message:send frame
  publishers_join: false, // publishers are separate connections; join their room if true
  connect_concurrency: 100,
  connect_timeout_s: 60,
  max_lifetime_s: 900,
  run_tag: 'bench',
  polling_share: 0, // of every room's members, on long-polling to polling_url
  polling_url: null, // e.g. http://127.0.0.1:PORT (a balancer)
  polling_sources: [], // source addresses, one per polling member in turn (e.g. 127.0.0.2...)
  polling_keep_alive: false, // false: a new TCP connection per request (no stickiness)
};

const nowUs = () => performance.now() * 1000;
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const log = (...args) => process.stderr.write(`[loadgen] ${args.join(' ')}\n`);

function loadConfig() {
  const i = process.argv.indexOf('--config');
  const fromFile = i >= 0 ? JSON.parse(fs.readFileSync(process.argv[i + 1], 'utf8')) : {};
  const cfg = { ...DEFAULTS, ...fromFile };
  if (!cfg.tokens && cfg.tokens_file) {
    cfg.tokens = fs.readFileSync(cfg.tokens_file, 'utf8').split('\n').filter(Boolean);
  }
  // (the runner's wire settings are strings: "0.25", "127.0.0.2,127.0.0.3", "true")
  cfg.polling_share = Number(cfg.polling_share) || 0;
  if (typeof cfg.polling_sources === 'string') {
    cfg.polling_sources = cfg.polling_sources.split(',').filter(Boolean);
  }
  cfg.polling_keep_alive = cfg.polling_keep_alive === true || cfg.polling_keep_alive === 'true';
  if (cfg.polling_share > 0 && !cfg.polling_url) throw new Error('polling_share needs polling_url');
  const total = cfg.rooms * cfg.members_per_room + cfg.publishers;
  if (!Array.isArray(cfg.tokens) || cfg.tokens.length < total) {
    throw new Error(`need ${total} tokens, got ${cfg.tokens ? cfg.tokens.length : 0}`);
  }
  return cfg;
}

const cfg = loadConfig();
const NSP = cfg.namespace;
const NSP_PREFIX = NSP === '/' ? '' : `${NSP},`;
const B = (s) => Buffer.from(s, 'latin1');
const PFX_EVENT_RECEIVED = B(`42${NSP_PREFIX}[${JSON.stringify(cfg.receive_event)}`);
const PFX_ACK = B(`43${NSP_PREFIX}`);
const PFX_CONNECT = `40${NSP_PREFIX}`;
const PFX_CONNECT_ERROR = `44${NSP_PREFIX}`;
const TEXT_KEY = B('"text":"');
const OK_TRUE = B('"ok":true');
const MEMBERS = cfg.rooms * cfg.members_per_room;
const P = cfg.publishers;
const roomName = (r) => `${cfg.room_prefix}${r}`;
const roomOfPublisher = (p) => p % cfg.rooms;

setTimeout(() => {
  log(`max lifetime ${cfg.max_lifetime_s}s reached, exiting`);
  process.exit(3);
}, cfg.max_lifetime_s * 1000).unref();

// ---------------------------------------------------------------------------------------------
// State

const conns = []; // every connection, members then publishers
const pubs = []; // per publisher: {conn, room, sent, counts, expected}
const roomMembers = new Int32Array(cfg.rooms); // members usable at the end of the setup
const totals = {
  delivered: 0, // member deliveries of any step (duplicates included)
  expected: 0, // sum over published messages of their room's member count
  self: 0, // deliveries of a publisher's own messages back to it (publishers_join only)
  other_frames: 0,
  bad_frames: 0,
  closed: 0,
  close_codes: {},
  close_reasons: [], // the first few of polling sessions ended after the setup
};
let step = null; // the running step's accounting

function newStepStats(id) {
  return {
    id,
    start: new Int32Array(P),
    end: null, // Int32Array(P) once the window closed
    windowEndUs: Infinity,
    hist: new Histogram(),
    pollHist: new Histogram(), // deliveries to polling members (when there are any)
    wsHist: new Histogram(),
    ackHist: new Histogram(),
    delivered: 0,
    deliveredInWindow: 0,
    late: 0, // deliveries of messages from earlier steps that arrived during this one
    outOfOrder: 0,
    misrouted: 0,
    acksOk: 0,
    acksErr: 0,
    ackErrors: [],
    closed: 0,
    bytesIn: 0,
    framesIn: 0,
    bytesOut: 0,
    framesOut: 0,
  };
}

// ---------------------------------------------------------------------------------------------
// Frame parsing on Buffers (no string allocation on the delivery path)

function startsWith(buf, prefix) {
  return buf.length >= prefix.length && buf.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

// Reads the decimal digits at buf[i..]; returns [value, index after the digits] or null.
function readInt(buf, i) {
  let v = 0;
  const start = i;
  for (; i < buf.length; i++) {
    const c = buf[i];
    if (c < 48 || c > 57) break;
    v = v * 10 + (c - 48);
  }
  return i === start ? null : [v, i];
}

// Text of a message:send is "P<publisher>:<number>:<send time µs>:" then padding.
function parseText(buf) {
  let i = buf.indexOf(TEXT_KEY, PFX_EVENT_RECEIVED.length);
  if (i < 0) return null;
  i += TEXT_KEY.length;
  if (buf[i] !== 80 /* P */) return null;
  const a = readInt(buf, i + 1);
  if (!a || buf[a[1]] !== 58) return null;
  const b = readInt(buf, a[1] + 1);
  if (!b || buf[b[1]] !== 58) return null;
  const c = readInt(buf, b[1] + 1);
  if (!c || buf[c[1]] !== 58) return null;
  return [a[0], b[0], c[0]];
}

// ---------------------------------------------------------------------------------------------
// Deliveries and acks

function onDelivery(conn, buf, t) {
  const parsed = parseText(buf);
  if (!parsed) {
    totals.bad_frames++;
    return;
  }
  const [p, num, sentUs] = parsed;
  if (p >= P || num >= pubs[p].sent) {
    totals.bad_frames++;
    return;
  }
  if (conn.role === 'pub') {
    totals.self++;
    return;
  }
  const pub = pubs[p];
  const s = step;
  if (pub.room !== conn.room) {
    if (s) s.misrouted++;
    return;
  }
  totals.delivered++;
  if (pub.counts[num] < 65535) pub.counts[num]++;
  if (num <= conn.last[p]) {
    if (s) s.outOfOrder++;
  } else {
    conn.last[p] = num;
  }
  if (!s) return;
  if (num >= s.start[p] && (s.end === null || num < s.end[p])) {
    s.delivered++;
    if (t <= s.windowEndUs) s.deliveredInWindow++;
    s.hist.add(t - sentUs);
    (conn.polling ? s.pollHist : s.wsHist).add(t - sentUs);
  } else if (num < s.start[p]) {
    s.late++;
  }
}

function onAck(conn, buf, t) {
  const r = readInt(buf, PFX_ACK.length);
  if (!r) {
    totals.bad_frames++;
    return;
  }
  const sentAt = conn.pendingAcks.get(r[0]);
  if (sentAt === undefined) return; // join ack or unknown id
  conn.pendingAcks.delete(r[0]);
  const s = step;
  if (!s) return;
  s.ackHist.add(t - sentAt);
  if (buf.indexOf(OK_TRUE, r[1]) >= 0) {
    s.acksOk++;
  } else {
    s.acksErr++;
    if (s.ackErrors.length < 5) s.ackErrors.push(buf.toString('utf8', 0, 300));
  }
}

// ---------------------------------------------------------------------------------------------
// Connections

// Member i is the k-th of its room (k = floor(i / rooms)); of every room's members, the k for
// which floor(k * share) steps up are on polling, so each room has its share of them.
const memberRank = (i) => Math.floor(i / cfg.rooms);
const polledBefore = (k) => Math.floor(k * cfg.polling_share);
const isPolling = (i) => i < MEMBERS && polledBefore(memberRank(i) + 1) > polledBefore(memberRank(i));

function gatewayOf(i) {
  // members: 10 consecutive indexes cover the 10 rooms, so alternating blocks of 10 put half
  // of every room's WebSocket members on each gateway; publishers alternate.
  if (i >= MEMBERS) return (i - MEMBERS) % cfg.urls.length;
  const k = memberRank(i);
  return (k - polledBefore(k)) % cfg.urls.length;
}

let pollingMembers = 0;

function makeConn(i) {
  const isPub = i >= MEMBERS;
  const p = i - MEMBERS;
  const polling = isPolling(i);
  return {
    i,
    role: isPub ? 'pub' : 'member',
    room: isPub ? roomOfPublisher(p) : i % cfg.rooms,
    url: polling ? cfg.polling_url : cfg.urls[gatewayOf(i)] + cfg.path,
    polling,
    pollIndex: polling ? pollingMembers++ : -1,
    token: cfg.tokens[i],
    link: null,
    state: 'new',
    nextAck: 1,
    pendingAcks: new Map(),
    last: isPub ? null : new Int32Array(P).fill(-1),
  };
}

// The WebSocket link: the same shape as polling.js's PollingLink.
function wsLink(conn, events) {
  const ws = new WebSocket(conn.url, {
    headers: { Authorization: `Bearer ${conn.token}` },
    perMessageDeflate: false,
    skipUTF8Validation: true,
  });
  ws.on('unexpected-response', (_req, res) => events.fail(`HTTP ${res.statusCode} on upgrade`));
  ws.on('error', (e) => events.fail(`socket error ${e.message}`));
  ws.on('close', (code, reason) => events.closed(code, reason));
  ws.on('message', (buf, isBinary) => events.frame(buf, isBinary));
  return { send: (text) => ws.send(text), terminate: () => ws.terminate() };
}

function openLink(conn, events) {
  if (!conn.polling) return wsLink(conn, events);
  const sources = cfg.polling_sources;
  const localAddress = sources.length ? sources[conn.pollIndex % sources.length] : undefined;
  return new PollingLink(conn.url, { localAddress, keepAlive: cfg.polling_keep_alive }, events);
}

// One frame (an Engine.IO packet) from the server; `finish` ends the setup of `conn`.
function onFrame(conn, buf, isBinary, finish) {
  const t = nowUs();
  if (step) {
    step.bytesIn += buf.length;
    step.framesIn++;
  }
  if (buf.length === 1 && buf[0] === 50 /* '2' ping */) {
    conn.link.send('3');
    return;
  }
  if (conn.state === 'ready') {
    if (startsWith(buf, PFX_EVENT_RECEIVED)) onDelivery(conn, buf, t);
    else if (startsWith(buf, PFX_ACK)) onAck(conn, buf, t);
    else totals.other_frames++;
    return;
  }
  const s = buf.toString('utf8');
  if (isBinary) return finish(`unexpected binary frame in state ${conn.state}`);
  if (conn.state === 'open-wait') {
    if (s[0] !== '0') return finish(`expected open packet, got ${s.slice(0, 200)}`);
    conn.state = 'connect-wait';
    conn.link.send(`40${NSP_PREFIX}${JSON.stringify({ token: conn.token })}`);
  } else if (conn.state === 'connect-wait') {
    if (s.startsWith(PFX_CONNECT)) {
      if (conn.role === 'pub' && !cfg.publishers_join) {
        conn.state = 'ready';
        finish();
        return;
      }
      conn.state = 'join-wait';
      conn.joinAck = conn.nextAck++;
      const join = JSON.stringify(['room:join', { room: roomName(conn.room) }]);
      conn.link.send(`42${NSP_PREFIX}${conn.joinAck}${join}`);
    } else if (s.startsWith(PFX_CONNECT_ERROR)) {
      finish(`CONNECT_ERROR ${s.slice(0, 300)}`);
    } // anything else before the CONNECT reply is ignored
  } else if (conn.state === 'join-wait') {
    if (s.startsWith(`43${NSP_PREFIX}${conn.joinAck}[`)) {
      if (!s.includes('"ok":true')) return finish(`join refused: ${s.slice(0, 300)}`);
      conn.state = 'ready';
      finish();
    }
  }
}

function openConn(conn, timeoutMs) {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) {
        try { conn.link.terminate(); } catch (_) { /* already gone */ }
        reject(new Error(`conn ${conn.i} (${conn.url}): ${err}`));
      } else {
        resolve();
      }
    };
    const timer = setTimeout(() => finish(`not usable after ${timeoutMs} ms (state ${conn.state})`), timeoutMs);
    conn.state = 'open-wait';
    conn.link = openLink(conn, {
      fail: finish,
      frame: (buf, isBinary) => onFrame(conn, buf, isBinary, finish),
      closed: (code, reason) => {
        if (!done) {
          finish(`closed ${code} ${reason} during setup (state ${conn.state})`);
          return;
        }
        totals.closed++;
        totals.close_codes[code] = (totals.close_codes[code] || 0) + 1;
        if (conn.polling && totals.close_reasons.length < 5) totals.close_reasons.push(`${reason}`);
        if (step) step.closed++;
      },
    });
  });
}

async function connectAll() {
  const total = MEMBERS + P;
  for (let i = 0; i < total; i++) conns.push(makeConn(i));
  for (let p = 0; p < P; p++) {
    pubs.push({ conn: conns[MEMBERS + p], room: roomOfPublisher(p), sent: 0, counts: new Uint16Array(1 << 16) });
  }
  const t0 = performance.now();
  const timeoutMs = cfg.connect_timeout_s * 1000;
  let next = 0;
  const errors = [];
  const worker = async () => {
    while (next < total && errors.length === 0) {
      const conn = conns[next++];
      try {
        await openConn(conn, timeoutMs);
      } catch (e) {
        errors.push(e.message);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(cfg.connect_concurrency, total) }, worker));
  if (errors.length) return { ok: false, errors };
  for (const c of conns) if (c.role === 'member') roomMembers[c.room]++;
  return { ok: true, ms: performance.now() - t0 };
}

// ---------------------------------------------------------------------------------------------
// Publishing (open loop)

function ensureCapacity(pub, n) {
  if (n < pub.counts.length) return;
  let size = pub.counts.length;
  while (size <= n) size *= 2;
  const bigger = new Uint16Array(size);
  bigger.set(pub.counts);
  pub.counts = bigger;
}

const PAD = 'x'.repeat(4096);
const SEND_EVENT = JSON.stringify(cfg.send_event);

function publish(p, s) {
  const pub = pubs[p];
  const conn = pub.conn;
  const num = pub.sent;
  ensureCapacity(pub, num);
  pub.sent++;
  totals.expected += roomMembers[pub.room];
  const ack = conn.nextAck++;
  const t = nowUs();
  const ts = Math.round(t);
  const head = `42${NSP_PREFIX}${ack}[${SEND_EVENT},{"room":"${roomName(pub.room)}","id":"${cfg.run_tag}-${p}-${num}","text":"P${p}:${num}:${ts}:`;
  const tail = '"}]';
  const padLen = cfg.frame_bytes - head.length - tail.length;
  const frame = padLen > 0 ? head + PAD.slice(0, padLen) + tail : head + tail;
  conn.pendingAcks.set(ack, t);
  s.bytesOut += frame.length;
  s.framesOut++;
  conn.link.send(frame);
}

const pollingRequests = () => conns.reduce((n, c) => n + (c.polling ? c.link.requests : 0), 0);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function settle(maxS) {
  // Wait until the deliveries of earlier steps have arrived, or nothing arrived for 1 s.
  const t0 = performance.now();
  let lastCount = totals.delivered;
  let lastChange = t0;
  while (performance.now() - t0 < maxS * 1000) {
    if (totals.delivered >= totals.expected) break;
    await sleep(20);
    if (totals.delivered !== lastCount) {
      lastCount = totals.delivered;
      lastChange = performance.now();
    } else if (performance.now() - lastChange > 1000) {
      break;
    }
  }
  return { ms: performance.now() - t0, outstanding: totals.expected - totals.delivered };
}

async function runStep(cmd) {
  const rate = cmd.rate;
  const durationMs = cmd.duration_s * 1000;
  const graceMs = (cmd.grace_s ?? 3) * 1000;
  const settled = await settle(cmd.settle_s ?? 10);

  const s = newStepStats(cmd.id);
  for (let p = 0; p < P; p++) s.start[p] = pubs[p].sent;
  const pollingRequestsBefore = pollingRequests();
  step = s;
  out({ event: 'window_start', id: cmd.id });
  const t0 = performance.now();
  let sent = 0;
  let rr = 0;
  let maxGap = 0;
  let lastTick = t0;
  for (;;) {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - lastTick);
    lastTick = now;
    const elapsed = Math.min(now - t0, durationMs);
    const due = Math.floor((elapsed / 1000) * rate);
    while (sent < due) {
      publish(rr, s);
      rr = (rr + 1) % P;
      sent++;
    }
    if (now - t0 >= durationMs) break;
    await sleep(1);
  }
  const windowEnd = performance.now();
  s.windowEndUs = windowEnd * 1000;
  s.end = new Int32Array(P);
  let expected = 0;
  for (let p = 0; p < P; p++) {
    s.end[p] = pubs[p].sent;
    expected += (s.end[p] - s.start[p]) * roomMembers[pubs[p].room];
  }
  out({ event: 'window_end', id: cmd.id });

  while (s.delivered < expected && performance.now() - windowEnd < graceMs) await sleep(5);
  const drainMs = performance.now() - windowEnd;

  // Exact loss/duplicate count from the per-message receipt counters.
  let unique = 0;
  let lost = 0;
  let dup = 0;
  for (let p = 0; p < P; p++) {
    const counts = pubs[p].counts;
    const want = roomMembers[pubs[p].room];
    for (let n = s.start[p]; n < s.end[p]; n++) {
      const c = counts[n];
      if (c < want) {
        lost += want - c;
        unique += c;
      } else {
        dup += c - want;
        unique += want;
      }
    }
  }
  step = null;
  let pendingAcks = 0;
  for (const pub of pubs) pendingAcks += pub.conn.pendingAcks.size;
  const windowS = (windowEnd - t0) / 1000;
  return {
    event: 'step_result',
    id: cmd.id,
    target_rate: rate,
    duration_s: windowS,
    published: sent,
    publish_rate: sent / windowS,
    expected,
    delivered: unique,
    lost,
    dup,
    out_of_order: s.outOfOrder,
    misrouted: s.misrouted,
    late_from_earlier_steps: s.late,
    delivered_per_s: unique / windowS,
    delivered_in_window_per_s: s.deliveredInWindow / windowS,
    drain_ms: drainMs,
    latency_ms: s.hist.summary(),
    latency_polling_ms: s.pollHist.summary(),
    latency_websocket_ms: s.wsHist.summary(),
    polling_members: conns.filter((c) => c.polling).length,
    polling_requests: pollingRequests() - pollingRequestsBefore, // from window start to now
    close_reasons: totals.close_reasons,
    acks_ok: s.acksOk,
    acks_err: s.acksErr,
    acks_pending: pendingAcks,
    ack_errors: s.ackErrors,
    ack_latency_ms: s.ackHist.summary(),
    closed_during_step: s.closed,
    closed_total: totals.closed,
    close_codes: totals.close_codes,
    max_tick_gap_ms: maxGap,
    frames_in: s.framesIn,
    avg_frame_bytes_in: s.framesIn ? s.bytesIn / s.framesIn : 0,
    avg_frame_bytes_out: s.framesOut ? s.bytesOut / s.framesOut : 0,
    settle_ms: settled.ms,
    outstanding_before: settled.outstanding,
    other_frames_total: totals.other_frames,
    bad_frames_total: totals.bad_frames,
    self_deliveries_total: totals.self,
  };
}

// ---------------------------------------------------------------------------------------------
// Main

function shutdown(code) {
  for (const c of conns) {
    try { if (c.link) c.link.terminate(); } catch (_) { /* already gone */ }
  }
  process.exit(code);
}

async function main() {
  const setup = await connectAll();
  if (!setup.ok) {
    out({ event: 'fatal', stage: 'connect', errors: setup.errors.slice(0, 5) });
    shutdown(2);
    return;
  }
  out({
    event: 'ready',
    connections: conns.length,
    members: MEMBERS,
    publishers: P,
    polling_members: pollingMembers,
    room_members: Array.from(roomMembers),
    setup_ms: setup.ms,
    other_frames: totals.other_frames,
  });
  const queue = [];
  let wake = null;
  let eof = false;
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (!line.trim()) return;
    queue.push(line);
    if (wake) wake();
  });
  rl.on('close', () => {
    eof = true;
    if (wake) wake();
  });
  for (;;) {
    if (queue.length === 0) {
      if (eof) break;
      await new Promise((r) => { wake = r; });
      wake = null;
      continue;
    }
    let cmd;
    try {
      cmd = JSON.parse(queue.shift());
    } catch (e) {
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
