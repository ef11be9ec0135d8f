// "A is typing…" for the room on screen, and our own typing:start/typing:stop.
//
// The presence service sends a stop when a typist goes quiet; the page also forgets a typist
// who sends a message or stays silent too long (a stop lost while reconnecting).
import { TYPING_START, TYPING_STOP } from "./events.js";

const SEND_EVERY_MS = 1000; // our typing:start at most once a second (the server coalesces too)
const FORGET_MS = 30000; // a typist is announced once per stretch, however long

// "A is typing…", "A and B are typing…", "A, B and C are typing…", "A, B and 3 others are typing…"
export function typingText(names) {
  if (names.length === 0) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  const shown = names.length > 3 ? [...names.slice(0, 2), `${names.length - 2} others`] : names;
  return `${shown.slice(0, -1).join(", ")} and ${shown.at(-1)} are typing…`;
}

export class Typing {
  constructor(line) {
    this.line = line;
    this.typists = new Map(); // user -> timer that forgets them
    this.sentAt = 0; // when we last sent typing:start; 0 = not typing
  }

  set(user, typing) {
    clearTimeout(this.typists.get(user));
    if (typing) this.typists.set(user, setTimeout(() => this.set(user, false), FORGET_MS));
    else this.typists.delete(user);
    this.line.textContent = typingText([...this.typists.keys()]);
  }

  clear() {
    for (const timer of this.typists.values()) clearTimeout(timer);
    this.typists.clear();
    this.line.textContent = "";
    this.sentAt = 0;
  }

  // On every input event: a start at most once a second (each keeps the server's quiet timer
  // from expiring), a stop when the input is cleared.
  noteInput(socket, room, text) {
    if (!text) return this.stop(socket, room);
    if (!room || !socket?.connected || Date.now() - this.sentAt < SEND_EVERY_MS) return;
    this.sentAt = Date.now();
    socket.emit(TYPING_START, { room }, () => {});
  }

  stop(socket, room) {
    if (!this.sentAt) return;
    this.sentAt = 0;
    if (room && socket?.connected) socket.emit(TYPING_STOP, { room }, () => {});
  }
}
