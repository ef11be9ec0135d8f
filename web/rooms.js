// Room names as a person types them, and what the page remembers across reloads (no DOM, so
// tests/unit/test_web_page.py runs this in node).
//
// Room names are 1-128 characters of [A-Za-z0-9_:@-]. A token without a `rooms` claim (as the
// development tokens are) allows `room:*` only, so a bare `lobby` would be refused: it is
// prefixed, and the page says so.

const ROOM_RE = /^[A-Za-z0-9_:@-]{1,128}$/;
export const ROOM_PREFIX = "room:";

// -> {room, hint?} or {error}
export function normaliseRoom(input) {
  const typed = String(input ?? "").trim();
  if (!typed) return { error: "type a room name, e.g. room:lobby" };
  const room = typed.includes(":") ? typed : ROOM_PREFIX + typed;
  if (!ROOM_RE.test(room)) {
    return { error: "room names use letters, digits and _ : @ - only (at most 128), e.g. room:lobby" };
  }
  if (room !== typed) return { room, hint: `rooms are named ${ROOM_PREFIX}<name>: joining ${room}` };
  return { room };
}

// A hint for a refused join, beside the server's own code and message.
export function joinHint(room, code) {
  if (code === "forbidden" && !room.startsWith(ROOM_PREFIX)) {
    return `the development token allows ${ROOM_PREFIX}* rooms only: try ${ROOM_PREFIX}${room.split(":").pop()}`;
  }
  if (code === "rate_limited") return "too many requests: wait a moment and try again";
  return "";
}

const STORAGE_KEY = "switchboard-demo";

// {name, rooms: [...], active, connected}; anything unreadable is forgotten.
export function loadSaved(storage) {
  let saved = {};
  try {
    saved = JSON.parse(storage?.getItem(STORAGE_KEY) ?? "{}") ?? {};
  } catch {
    saved = {};
  }
  const rooms = Array.isArray(saved.rooms) ? saved.rooms.filter((r) => typeof r === "string" && ROOM_RE.test(r)) : [];
  return {
    name: typeof saved.name === "string" ? saved.name : "",
    rooms,
    active: rooms.includes(saved.active) ? saved.active : (rooms[0] ?? null),
    connected: saved.connected === true,
  };
}

export function save(storage, state) {
  try {
    storage?.setItem(STORAGE_KEY, JSON.stringify(state));
  } catch {
    // Private browsing or a full quota: the page works, it just forgets on reload.
  }
}
