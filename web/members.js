// The members panel of the room on screen.
//
// Loaded with `room:presence` after every join, room switch and (re)connection, then kept
// current by `presence:update` (joined/left/online/offline). A `{room, count}` summary (big
// rooms) means the list is stale, so it is fetched again. While the page is disconnected the
// panel is greyed: what it shows is only what was true when the connection dropped.
// Names come from the network: textContent only.
import { ROOM_PRESENCE } from "./events.js";

export class Members {
  constructor({ panel, list, title, note }, me) {
    Object.assign(this, { panel, list, title, note, me });
    this.room = null;
    this.members = new Map(); // user -> online?
    this.total = null; // the server's count when the list was truncated
    this.generation = 0; // of the latest room:presence request
    this.pending = null; // updates that arrived while a request was in flight
  }

  reset(room) {
    this.generation++;
    this.room = room;
    this.pending = null;
    this.members.clear();
    this.total = null;
    if (room) this.members.set(this.me(), true);
    this.render();
  }

  // `request(event, payload)` resolves with the ack; a newer load or a room change wins.
  async load(request, failed) {
    const room = this.room;
    if (!room) return;
    const generation = ++this.generation;
    this.pending = [];
    const ack = await request(ROOM_PRESENCE, { room });
    if (generation !== this.generation || room !== this.room) return;
    const pending = this.pending;
    this.pending = null;
    if (failed(ROOM_PRESENCE, ack)) {
      this.note.textContent = "the member list is unavailable";
      return;
    }
    this.members = new Map((ack.users ?? []).map((user) => [user, true]));
    this.members.set(this.me(), true); // we have joined, whatever the snapshot says
    this.total = ack.truncated ? ack.count : null;
    for (const update of pending) this.apply(update); // in order: harmless, and catches up
    this.render();
  }

  // -> true when the update concerned the room on screen (and was applied).
  onUpdate(update, request, failed) {
    if (!update || typeof update !== "object" || !this.room) return false;
    if (update.room !== undefined && update.room !== this.room) return false;
    if (update.count !== undefined) {
      this.load(request, failed);
      return false;
    }
    this.pending?.push(update);
    this.apply(update);
    this.render();
    return true;
  }

  apply({ user, status }) {
    if (user === this.me()) return; // while we are in the room we are a member, and online
    if (status === "joined") this.members.set(user, true);
    else if (status === "left") this.members.delete(user);
    else if ((status === "online" || status === "offline") && this.members.has(user)) {
      this.members.set(user, status === "online");
    }
  }

  setStale(stale) {
    this.panel.classList.toggle("stale", stale);
    this.render();
  }

  render() {
    const me = this.me();
    const names = [...this.members.keys()].sort((a, b) => a.localeCompare(b));
    this.list.replaceChildren(...names.map((name) => {
      const item = document.createElement("li");
      const online = this.members.get(name);
      item.textContent = name + (name === me ? " (you)" : "") + (online ? "" : " (offline)");
      item.classList.toggle("offline", !online);
      item.classList.toggle("you", name === me);
      return item;
    }));
    const total = this.total ?? names.length;
    this.title.textContent = this.room ? `Members (${total})` : "Members";
    const stale = this.panel.classList.contains("stale");
    this.note.textContent = stale && this.room ? "not connected: as it was when the connection dropped"
      : names.length < total ? `showing ${names.length} of ${total}` : "";
  }
}
