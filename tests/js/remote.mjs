// Remote control for the real socket.io-client: JSON lines in on stdin, JSON lines out.
//
// In:  {"op":"connect","id":"a","url":"http://...","nsp":"/chat","opts":{...}}
//      {"op":"emit","id":"a","event":"room:join","args":[...],"ack":7}   (ack: a tag, or absent)
//      {"op":"close","id":"a"}  |  {"op":"engine_close","id":"a"}  |  {"op":"exit"}
// Out: {"type":"connect","id":"a","sid":"...","recovered":false,"transport":"polling",
//       "engine":"<Engine.IO sid>"}
//      {"type":"upgrade","id":"a","transport":"websocket"}   (a polling session upgraded)
//      {"type":"connect_error","id":"a","message":"...","data":...}
//      {"type":"disconnect","id":"a","reason":"..."}
//      {"type":"event","id":"a","event":"message:received","args":[...]}
//      {"type":"ack","id":"a","ack":7,"args":[...]}
// Binary values travel as {"$bin":"<base64>"} both ways.
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const sockets = new Map();
const out = (msg) => process.stdout.write(JSON.stringify(msg, encode) + "\n");

function encode(_key, value) {
  if (value && value.type === "Buffer" && Array.isArray(value.data)) {
    return { $bin: Buffer.from(value.data).toString("base64") };
  }
  if (value instanceof ArrayBuffer) return { $bin: Buffer.from(value).toString("base64") };
  return value;
}

function decode(value) {
  if (Array.isArray(value)) return value.map(decode);
  if (value && typeof value === "object") {
    if (typeof value.$bin === "string") return Buffer.from(value.$bin, "base64");
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, decode(v)]));
  }
  return value;
}

function connect(cmd) {
  const socket = io(cmd.url + (cmd.nsp || "/"), { forceNew: true, ...(cmd.opts || {}) });
  sockets.set(cmd.id, socket);
  socket.on("connect", () =>
    out({ type: "connect", id: cmd.id, sid: socket.id, recovered: socket.recovered,
          transport: socket.io.engine.transport.name, engine: socket.io.engine.id }),
  );
  socket.io.on("open", () =>
    socket.io.engine.on("upgrade", (transport) =>
      out({ type: "upgrade", id: cmd.id, transport: transport.name }),
    ),
  );
  socket.on("connect_error", (err) =>
    out({ type: "connect_error", id: cmd.id, message: err.message, data: err.data ?? null }),
  );
  socket.on("disconnect", (reason) => out({ type: "disconnect", id: cmd.id, reason }));
  socket.onAny((event, ...args) => out({ type: "event", id: cmd.id, event, args }));
}

function emit(cmd) {
  const socket = sockets.get(cmd.id);
  const args = decode(cmd.args || []);
  if (cmd.ack === undefined) {
    socket.emit(cmd.event, ...args);
  } else {
    socket.emit(cmd.event, ...args, (...reply) =>
      out({ type: "ack", id: cmd.id, ack: cmd.ack, args: reply }),
    );
  }
}

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  try {
    if (cmd.op === "connect") connect(cmd);
    else if (cmd.op === "emit") emit(cmd);
    else if (cmd.op === "close") sockets.get(cmd.id)?.disconnect();
    else if (cmd.op === "engine_close") sockets.get(cmd.id)?.io.engine.close();
    else if (cmd.op === "exit") process.exit(0);
  } catch (err) {
    out({ type: "failure", id: cmd.id, message: String(err) });
  }
});
rl.on("close", () => process.exit(0));
