"""Compare-and-set writes to a KV bucket sent as plain requests to its subject.

nats-py's ``KeyValue.update`` and ``JetStreamContext.publish`` build a header dict, a future,
a ``wait_for`` timer and a parsed ``Msg`` per write; the registry (on every connect and
close) and the presence store (on every socket's open and close) write often enough for that
to show. Here the header block is bytes, the request goes through a light request mux
(:mod:`shared.request_mux`) and the PubAck is read straight from the reply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import orjson

CONFLICT_CODES = (10071, 10164)
"""JetStream's "wrong last sequence": the key changed since, or (expected 0) exists."""


class RawReply(Protocol):
    """A reply as the protocol parser handed it over: the body and the raw header block."""

    @property
    def data(self) -> bytes: ...

    @property
    def headers(self) -> bytes | None: ...

    @property
    def status(self) -> bytes: ...


RawRequest = Callable[[str, bytes, bytes | None], Awaitable[RawReply]]
"""A request without nats-py's per-request future, timer and header parsing (a light request
mux's); it raises (any exception) when nothing came back."""


def write_headers(last: int | None, ttl_s: int | None) -> bytes | None:
    """Headers of a write expected at revision ``last`` (``None``: any), with a per-message
    TTL in whole seconds when ``ttl_s`` is given."""
    if last is None and ttl_s is None:
        return None
    block = b"NATS/1.0\r\n"
    if last is not None:
        block += b"Nats-Expected-Last-Subject-Sequence: %d\r\n" % last
    if ttl_s is not None:
        block += b"Nats-TTL: %d\r\n" % ttl_s
    return block + b"\r\n"


def written(reply: RawReply, error: type[Exception], what: str) -> int | None:
    """The revision a compare-and-set wrote; ``None`` when it lost the race. Anything else
    (no stream, an error, an unreadable answer) raises ``error``, naming ``what``."""
    if reply.status:
        raise error(f"{what} failed ({reply.status.decode()})")
    try:
        ack = orjson.loads(reply.data)
    except orjson.JSONDecodeError as exc:
        raise error(f"{what}: unreadable acknowledgement") from exc
    failure = ack.get("error") if isinstance(ack, dict) else None
    if isinstance(failure, dict):
        if failure.get("err_code") in CONFLICT_CODES:
            return None
        raise error(f"{what} failed: {failure.get('description')}")
    seq = ack.get("seq") if isinstance(ack, dict) else None
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise error(f"{what}: acknowledgement without a sequence")
    return seq
