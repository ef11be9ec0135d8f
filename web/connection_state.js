// What the status line says about the connection, as plain functions of what socket.io-client
// reported (no DOM, so tests/unit/test_web_page.py runs them in node).
//
// The CONNECT reply does not name the gateway; the Engine.IO sid does: 128 random bits, `~`,
// then the owning gateway's instance id in the token encoding of shared/protocol/names.py
// (bytes outside [A-Za-z0-9_-] as `=HH`). An upgrade always reaches that owner, so the sid's
// owner is the gateway holding the session.

export function gatewayOf(sid) {
  if (typeof sid !== "string") return null;
  const cut = sid.lastIndexOf("~");
  if (cut < 22 || cut === sid.length - 1) return null;
  const token = sid.slice(cut + 1);
  if (!/^(?:[A-Za-z0-9_-]|=[0-9A-F]{2})+$/.test(token)) return null;
  const bytes = [];
  for (let i = 0; i < token.length; i++) {
    if (token[i] === "=") {
      bytes.push(parseInt(token.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(token.charCodeAt(i));
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array(bytes));
  } catch {
    return null;
  }
}

// socket.io-client's Manager waits min(delay * 2^(n-1), max) before attempt n, then spreads it
// by ± randomizationFactor; it does not say the drawn value, so the page shows the middle.
export function nominalDelayMs(attempt, delay, max) {
  return Math.min(delay * 2 ** Math.max(attempt - 1, 0), max);
}

const TRANSPORT_ERRORS = {
  "xhr poll error": "the long-polling request failed",
  "xhr post error": "sending over long-polling failed",
  "websocket error": "the WebSocket could not be opened",
  "websocket connection closed": "the WebSocket closed",
  "timeout": "no answer within the connect timeout",
  "server error": "the gateway refused the handshake",
  "probe error": "the upgrade to WebSocket failed (staying on long-polling)",
};

// Why a connection attempt failed, in words a person can act on.
export function explainConnectError(err) {
  const message = String(err?.message ?? err ?? "unknown error");
  const code = err?.data?.code;
  if (code === "unauthorized" || message === "unauthorized") {
    return "the gateway refused the token (expired, or signed with another SB_JWT_SECRET)";
  }
  if (message === "Invalid namespace") return "the gateway does not serve /chat";
  const known = TRANSPORT_ERRORS[message];
  if (known) {
    return known + httpStatusNote(err?.description);
  }
  return code ? `${message} [${code}]` : message;
}

function httpStatusNote(status) {
  if (typeof status !== "number") return "";
  if (status === 0) return " (no answer: the gateway is down or the network is offline)";
  if (status === 400) return " (HTTP 400: the session is gone, a new one starts)";
  return ` (HTTP ${status})`;
}

// Why a connected socket dropped (socket.active says whether socket.io-client reconnects).
const DISCONNECT_REASONS = {
  "io client disconnect": "you disconnected",
  "io server disconnect": "the server ended the session",
  "ping timeout": "no heartbeat from the gateway",
  "transport close": "the connection was closed",
  "transport error": "the connection failed",
  "parse error": "the gateway sent something unreadable",
};

export function explainDisconnect(reason) {
  return DISCONNECT_REASONS[reason] ?? String(reason);
}

// The status line: {phase, url, gateway, transport, recovered, attempt, nextInMs, why}.
export function statusText(s) {
  switch (s.phase) {
    case "connecting":
      return `connecting to ${s.url}…${s.why ? ` (last try: ${s.why})` : ""}`;
    case "connected": {
      const via = s.transport ? ` over ${s.transport}` : "";
      const session = s.recovered ? "session recovered" : "fresh session";
      return `connected to gateway ${s.gateway ?? "?"}${via} (${session})`;
    }
    case "reconnecting": {
      const wait = s.nextInMs > 0 ? `, next try in ${Math.ceil(s.nextInMs / 1000)} s` : ", trying now";
      const why = s.why ? ` — ${s.why}` : "";
      return `reconnecting (attempt ${s.attempt}${wait})${why}`;
    }
    default:
      return `disconnected${s.why ? `: ${s.why}` : ""}`;
  }
}
