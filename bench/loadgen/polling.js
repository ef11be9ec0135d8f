'use strict';
// Engine.IO v4 HTTP long-polling for the load generator: one session as a link with the same
// shape as the WebSocket one (send(text), terminate(), and the frame/closed callbacks), so the
// Socket.IO logic above it does not care which transport carries it.
//
// The handshake GET (its body, the open packet, is handed up as the first frame), then one GET
// after another: each is sent again as soon as the previous one answered, and the packets of
// the answer (joined by \x1e) go up one by one. Sends are queued while a POST is in flight and
// then posted together, so no more than one GET and one POST are ever pending (an overlap ends
// the session on every server). Without keep-alive (the default) every request is a new TCP
// connection, so a round-robin balancer in front spreads one session's requests over all the
// servers (the non-sticky case); `localAddress` binds the client end to one source address (an
// address-hashing balancer keeps the session on one server).

const http = require('http');

const SEP = 0x1e;
const POST_HEADERS = { 'Content-Type': 'text/plain;charset=UTF-8' };

class PollingLink {
  // events: {frame(buf, isBinary), closed(code, reason)}; closed is called once, whatever ends
  // the session (an HTTP error, a refused connection, the close packet), never by terminate().
  constructor(base, opts, events) {
    const url = new URL(base);
    this.host = url.hostname;
    this.port = Number(url.port);
    this.localAddress = opts.localAddress || undefined;
    // (an idle kept-alive socket is dropped after 5 s, as Node's global agent does, before a
    // server's idle timeout closes it under a request: Switchboard's is 10 s)
    this.agent = opts.keepAlive
      ? new http.Agent({ keepAlive: true, maxSockets: 2, timeout: 5000 })
      : false;
    this.events = events;
    this.sid = null;
    this.queue = [];
    this.posting = false;
    this.ended = false;
    this.pending = new Set();
    this.requests = 0;
    this.request('GET', '', null, (status, body) => this.opened(status, body));
  }

  request(method, query, body, done) {
    const headers = method === 'POST' ? { ...POST_HEADERS } : {};
    if (!this.agent) headers.Connection = 'close';
    const req = http.request({
      host: this.host,
      port: this.port,
      method,
      path: `/socket.io/?EIO=4&transport=polling${query}`,
      agent: this.agent,
      localAddress: this.localAddress,
      headers,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        this.pending.delete(req);
        if (!this.ended) done(res.statusCode, Buffer.concat(chunks));
      });
      res.on('error', (e) => this.end('poll-error', e.message));
    });
    this.pending.add(req);
    this.requests++;
    req.on('error', (e) => {
      this.pending.delete(req);
      this.end('poll-error', `${method} ${e.message}`);
    });
    req.end(body);
  }

  opened(status, body) {
    if (status !== 200 || body[0] !== 48 /* '0' */) {
      this.end(`poll-${status}`, `handshake answered ${body.toString('utf8', 0, 200)}`);
      return;
    }
    try {
      this.sid = JSON.parse(body.toString('utf8', 1)).sid;
    } catch (e) {
      this.end('poll-error', `bad open packet: ${e.message}`);
      return;
    }
    this.query = `&sid=${encodeURIComponent(this.sid)}`;
    this.poll();
    this.events.frame(body, false);
    this.flush();
  }

  poll() {
    this.request('GET', this.query, null, (status, body) => {
      if (status !== 200) {
        this.end(`poll-${status}`, `GET answered ${body.toString('utf8', 0, 200)}`);
        return;
      }
      this.poll(); // the next GET first: what follows may take a while
      let start = 0;
      while (start < body.length && !this.ended) {
        let stop = body.indexOf(SEP, start);
        if (stop < 0) stop = body.length;
        const packet = body.subarray(start, stop);
        start = stop + 1;
        if (packet.length === 1 && packet[0] === 49 /* '1' close */) {
          this.end('poll-close', 'close packet');
        } else if (!(packet.length === 1 && packet[0] === 54 /* '6' noop */)) {
          this.events.frame(packet, false);
        }
      }
    });
  }

  send(text) {
    this.queue.push(text);
    if (!this.posting) this.flush();
  }

  flush() {
    if (this.ended || this.sid === null || this.queue.length === 0) return;
    const body = this.queue.length === 1 ? this.queue[0] : this.queue.join('\x1e');
    this.queue = [];
    this.posting = true;
    this.request('POST', this.query, body, (status, answer) => {
      this.posting = false;
      if (status !== 200) {
        this.end(`poll-${status}`, `POST answered ${answer.toString('utf8', 0, 200)}`);
        return;
      }
      this.flush();
    });
  }

  end(code, reason) {
    if (this.ended) return;
    this.terminate();
    this.events.closed(code, reason);
  }

  terminate() {
    this.ended = true;
    for (const req of this.pending) req.destroy();
    this.pending.clear();
    if (this.agent) this.agent.destroy();
  }
}

module.exports = { PollingLink };
