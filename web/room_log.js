// One room's messages, keyed by the room log's `seq`: where a message goes, whether it was
// seen already, and what is missing. No DOM here, so tests/unit/test_web_page.py runs it in node.
//
// Messages arrive live (`message:received`, including what recovery or `room:join {since}`
// replays) and from `room:history`. A seq seen twice is shown once; a live delivery of a seq
// already delivered live is counted as a duplicate, because the server promises exactly-once
// and the counter makes a broken promise visible (history overlapping live delivery is not one).
// `prev` is the previous seq of the same room, so `prev` above the newest seq held means the
// messages in between were missed: `gapSince` says where `room:history {since}` should start.

export class RoomLog {
  constructor() {
    this.seqs = []; // ascending
    this.messages = new Map(); // seq -> message
    this.live = new Set(); // seqs delivered by message:received
    this.duplicates = 0;
    this.gaps = 0;
  }

  get last() {
    return this.seqs.length ? this.seqs[this.seqs.length - 1] : 0;
  }

  // -> {added: false} for a message already held; otherwise {added: true, next, gapSince}:
  // `next` is the held seq it goes before (null: at the end), `gapSince` the seq to fill from.
  add(message, live) {
    const { seq, prev } = message;
    if (!Number.isSafeInteger(seq) || seq <= 0) return { added: false, invalid: true };
    if (this.messages.has(seq)) {
      if (live && this.live.has(seq)) this.duplicates++;
      if (live) this.live.add(seq);
      return { added: false };
    }
    const last = this.last;
    const gapSince = live && last > 0 && Number.isSafeInteger(prev) && prev > last ? last : null;
    if (gapSince !== null) this.gaps++;
    const index = this.insertionIndex(seq);
    this.seqs.splice(index, 0, seq);
    this.messages.set(seq, message);
    if (live) this.live.add(seq);
    return { added: true, next: index + 1 < this.seqs.length ? this.seqs[index + 1] : null, gapSince };
  }

  insertionIndex(seq) {
    let low = 0;
    let high = this.seqs.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (this.seqs[middle] < seq) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  ordered() {
    return this.seqs.map((seq) => this.messages.get(seq));
  }
}

export const HISTORY_PAGE = 50;
export const NEWEST = Number.MAX_SAFE_INTEGER; // `before` this: the newest page of the room

// The `room:history` request that fills from `since`; a full page means ask again.
export function fillRequest(room, since) {
  return { room, since, limit: HISTORY_PAGE };
}

export function pageIsFull(ack) {
  return Array.isArray(ack?.messages) && ack.messages.length >= HISTORY_PAGE;
}
