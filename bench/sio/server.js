'use strict';
// The peer users would pick instead: Socket.IO 4.8 with @socket.io/redis-adapter, one process
// of a cluster (the benchmarks start two and one redis-server). It serves exactly the wire
// subset the load generators speak (bench/README.md, "Wire subset"):
//
//   namespace /chat, auth: an HS256 JWT in the CONNECT packet's `auth.token` or, when that is
//     absent, in `Authorization: Bearer` on the upgrade (the gateway accepts both), verified
//     with the shared secret (signature, `exp` with 10 s leeway, a string `sub`); a bad token is
//     a CONNECT_ERROR `unauthorized`;
//   `room:join` {room} -> ack {ok: true, room};
//   `message:send` {room, id, text} from a member of the room -> ack {ok, id, seq} and
//     `message:received` {room, id, from, text, ts} to the room through the adapter, so every
//     publish crosses redis to the other process (a non-member gets {ok: false, error});
//   namespace /bench (the same auth): `order:place` {id, qty} -> ack {ok: true, id}, answered
//     in-process (the application-hooks benchmark, bench/hooks.py; a non-string id gets
//     {ok: false, error: bad_request}). No broadcast: the adapter carries nothing for it.
//
// `seq` is a per-process, per-room counter: Socket.IO has no log, and a cluster-wide counter
// would add a redis round trip per message that no Socket.IO application pays by default.
// No compression (`perMessageDeflate: false`, `httpCompression: false`), polling allowed
// beside websocket (the default `transports`), no connection-state recovery (the default).
//
//   node server.js --port 0 --redis redis://127.0.0.1:PORT --secret-file F [--max-seconds N]
//
// Prints `READY {"port":P,"pid":N}` on stdout once listening and connected to redis; exits on
// SIGTERM/SIGINT, when redis goes away, or after --max-seconds (default 1800).

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const { Server } = require('socket.io');
const { createAdapter } = require('@socket.io/redis-adapter');
const { createClient } = require('redis');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const PORT = Number(arg('port', '0'));
const REDIS_URL = arg('redis', 'redis://127.0.0.1:6379');
const SECRET = fs.readFileSync(arg('secret-file'), 'utf8').trim();
const MAX_SECONDS = Number(arg('max-seconds', '1800'));
const LEEWAY_S = 10;
const log = (...args) => process.stderr.write(`[sio ${process.pid}] ${args.join(' ')}\n`);

setTimeout(() => { log('max lifetime reached'); process.exit(3); }, MAX_SECONDS * 1000).unref();
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));

// -- HS256 JWT, as the gateway checks it ------------------------------------------------------

const KEY = Buffer.from(SECRET, 'utf8');
const HEADER_OK = new Set(['HS256']);

function b64urlJson(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

// The claims of a valid token, or null.
function verify(token) {
  if (typeof token !== 'string') return null;
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  try {
    const header = b64urlJson(parts[0]);
    if (!HEADER_OK.has(header.alg)) return null;
    const expected = crypto.createHmac('sha256', KEY).update(`${parts[0]}.${parts[1]}`).digest();
    const given = Buffer.from(parts[2], 'base64url');
    if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) return null;
    const claims = b64urlJson(parts[1]);
    const now = Date.now() / 1000;
    if (typeof claims.exp !== 'number' || claims.exp + LEEWAY_S < now) return null;
    if (typeof claims.sub !== 'string' || !claims.sub) return null;
    return claims;
  } catch (_) {
    return null;
  }
}

function tokenOf(handshake) {
  const auth = handshake.auth && handshake.auth.token;
  if (auth) return auth;
  const header = handshake.headers.authorization || '';
  return header.startsWith('Bearer ') ? header.slice(7) : null;
}

// -- the server -------------------------------------------------------------------------------

async function main() {
  const pub = createClient({ url: REDIS_URL });
  const sub = pub.duplicate();
  for (const client of [pub, sub]) {
    client.on('error', (err) => { log(`redis: ${err.message}`); process.exit(4); });
  }
  await Promise.all([pub.connect(), sub.connect()]);

  const httpServer = http.createServer();
  const io = new Server(httpServer, {
    adapter: createAdapter(pub, sub),
    perMessageDeflate: false,
    httpCompression: false,
    serveClient: false,
    maxHttpBufferSize: 1e6,
    pingInterval: 25000,
    pingTimeout: 20000,
  });

  const authenticate = (socket, next) => {
    const claims = verify(tokenOf(socket.handshake));
    if (!claims) return next(new Error('unauthorized'));
    socket.data.sub = claims.sub;
    return next();
  };
  const chat = io.of('/chat');
  const seqs = new Map(); // room -> last seq given out by this process
  chat.use(authenticate);
  chat.on('connection', (socket) => {
    socket.on('room:join', (payload, ack) => {
      const room = payload && payload.room;
      if (typeof room !== 'string' || !room) {
        if (typeof ack === 'function') ack({ ok: false, error: 'bad_request' });
        return;
      }
      socket.join(room);
      if (typeof ack === 'function') ack({ ok: true, room });
    });
    socket.on('message:send', (payload, ack) => {
      const room = payload && payload.room;
      const reply = typeof ack === 'function' ? ack : () => {};
      if (typeof room !== 'string' || !socket.rooms.has(room)) {
        reply({ ok: false, error: 'not_joined' });
        return;
      }
      const seq = (seqs.get(room) || 0) + 1;
      seqs.set(room, seq);
      chat.to(room).emit('message:received', {
        room, id: payload.id, from: socket.data.sub, text: payload.text, ts: Date.now(),
      });
      reply({ ok: true, id: payload.id, seq });
    });
  });

  const bench = io.of('/bench');
  bench.use(authenticate);
  bench.on('connection', (socket) => {
    socket.on('order:place', (order, ack) => {
      if (typeof ack !== 'function') return;
      const id = order && order.id;
      if (typeof id !== 'string') ack({ ok: false, error: 'bad_request' });
      else ack({ ok: true, id });
    });
  });

  httpServer.listen(PORT, '127.0.0.1', () => {
    const { port } = httpServer.address();
    process.stdout.write(`READY ${JSON.stringify({ port, pid: process.pid })}\n`);
  });
}

main().catch((err) => {
  log(`fatal: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
