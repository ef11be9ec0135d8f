// The rooms list and one message log per room, each ordered by `seq` (see room_log.js).
//
// Everything from the network is rendered with textContent, never parsed as HTML.
import { RoomLog } from "./room_log.js";

function formatTime(ts) {
  // `ts` is epoch milliseconds (or seconds, or an ISO string): show whatever parses.
  const value = typeof ts === "number" && ts < 1e11 ? ts * 1000 : ts;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(ts ?? "") : date.toLocaleTimeString();
}

function item(kind, parts) {
  const li = document.createElement("li");
  li.className = kind;
  for (const [cls, text] of parts) {
    const span = document.createElement("span");
    if (cls) span.className = cls;
    span.textContent = String(text);
    li.append(span);
  }
  return li;
}

export class RoomViews {
  constructor({ logs, list, general }, onPick, onLeave) {
    Object.assign(this, { logs, list, general, onPick, onLeave });
    this.rooms = new Map(); // room -> {log: RoomLog, ul, entry, unread}
    this.active = null;
  }

  has(room) {
    return this.rooms.has(room);
  }

  names() {
    return [...this.rooms.keys()];
  }

  log(room) {
    return this.rooms.get(room)?.log ?? null;
  }

  ensure(room) {
    let view = this.rooms.get(room);
    if (view) return view;
    const ul = document.createElement("ul");
    ul.className = "log";
    ul.dataset.room = room;
    ul.hidden = true;
    ul.setAttribute("aria-live", "polite");
    this.logs.append(ul);
    view = { log: new RoomLog(), ul, entry: this.entry(room), unread: 0 };
    this.rooms.set(room, view);
    this.list.append(view.entry);
    return view;
  }

  entry(room) {
    const li = document.createElement("li");
    li.dataset.room = room;
    const pick = document.createElement("button");
    pick.type = "button";
    pick.className = "pick";
    pick.textContent = room;
    pick.addEventListener("click", () => this.onPick(room));
    const badge = document.createElement("span");
    badge.className = "unread";
    const leave = document.createElement("button");
    leave.type = "button";
    leave.className = "leave";
    leave.textContent = "leave";
    leave.title = `leave ${room}`;
    leave.addEventListener("click", () => this.onLeave(room));
    li.append(pick, badge, leave);
    return li;
  }

  show(room) {
    this.active = room;
    this.general.hidden = room !== null;
    for (const [name, view] of this.rooms) {
      view.ul.hidden = name !== room;
      view.entry.classList.toggle("active", name === room);
      if (name === room) this.setUnread(view, 0);
    }
    this.rooms.get(room)?.ul.lastElementChild?.scrollIntoView({ block: "end" });
  }

  remove(room) {
    const view = this.rooms.get(room);
    if (!view) return;
    view.ul.remove();
    view.entry.remove();
    this.rooms.delete(room);
  }

  // -> the seq to fill a gap from, or null.
  addMessage(room, message, live) {
    if (!message || typeof message !== "object" || !this.rooms.has(room)) return null;
    const view = this.rooms.get(room);
    const placed = view.log.add(message, live);
    view.ul.dataset.duplicates = String(view.log.duplicates);
    view.ul.dataset.gaps = String(view.log.gaps);
    if (!placed.added) return null;
    const li = item("message", [["meta", formatTime(message.ts)], ["from", message.from ?? "?"],
      ["text", message.text ?? ""]]);
    li.dataset.seq = String(message.seq);
    const next = placed.next === null ? null : view.ul.querySelector(`li.message[data-seq="${placed.next}"]`);
    view.ul.insertBefore(li, next);
    if (room === this.active) {
      if (!next) li.scrollIntoView({ block: "end" });
    } else if (live) this.setUnread(view, view.unread + 1);
    return placed.gapSince;
  }

  // A line that is not a message: into `room`'s log, or the one on screen when null.
  notice(kind, text, room = null) {
    const target = this.rooms.get(room ?? this.active)?.ul ?? this.general;
    const li = item(kind, [["", text]]);
    target.append(li);
    if (!target.hidden) li.scrollIntoView({ block: "end" });
  }

  setUnread(view, count) {
    view.unread = count;
    view.entry.querySelector(".unread").textContent = count ? String(count) : "";
  }
}
