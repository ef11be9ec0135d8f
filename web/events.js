// Event names of the Switchboard public contract, the same as shared/protocol/events.py.
// One `export const NAME = "value";` per line: tests/unit/test_events_sync.py parses this file.

// client -> server (all take an ack)
export const ROOM_JOIN = "room:join";
export const ROOM_LEAVE = "room:leave";
export const MESSAGE_SEND = "message:send";
export const ROOM_HISTORY = "room:history";
export const ROOM_PRESENCE = "room:presence";
export const TYPING_START = "typing:start";
export const TYPING_STOP = "typing:stop";

// server -> client
export const MESSAGE_RECEIVED = "message:received";
export const PRESENCE_UPDATE = "presence:update";
export const REQUEST_ERROR = "request:error";
