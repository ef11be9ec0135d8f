"""``SwitchboardClient``: the SDK's public API.

It builds the per-namespace state (rooms, sequence tracker, ack ids), the message feeds and
the connection, and turns the contract's events into methods: ``join``, ``leave``, ``send``,
``history``, ``emit_with_ack``. Apps get de-duplicated, in-order messages through
``on_message`` and everything else through ``on``.
"""

from __future__ import annotations

import asyncio
import random as _random
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from client.auth import TokenSource
from client.backoff import DEFAULT_BASE_S, DEFAULT_CAP_S
from client.channel import Channel
from client.connection import Connection, Options
from client.counters import Counters
from client.dispatch import Callback, Dispatcher
from client.engine import DEFAULT_PATH, engine_url
from client.feed import Feed
from client.positions import MemoryPositionStore, PositionStore
from client.sequence import SequenceTracker
from client.state import ConnectionState, DisconnectReason, StateListener
from shared.protocol import events


class SwitchboardClient:
    """A Switchboard (Socket.IO v5) client with recovery, retries and de-duplication.

    ``url``: the gateway (``http://host:port``), or several tried in turn on reconnect.

    ``token``: a string or a (coroutine) function asked on every (re)connect.
    ``namespaces``: multiplexed on one connection; the first is the default of every method.
    ``recovery``: ask for connection-state recovery (``False`` sends ``recovery: false``).
    ``store``: keeps each room's last ``seq`` across restarts (default: in memory).
    ``ack_timeout`` / ``retries``: per attempt, and attempts after the first, of every request.
    ``backoff_base`` / ``backoff_cap`` / ``random``: reconnect delay
    ``min(cap, base * 2**attempt + random())``.
    ``history_limit``: page size of gap fills.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        token: TokenSource,
        namespaces: Iterable[str] = ("/chat",),
        *,
        recovery: bool = True,
        store: PositionStore | None = None,
        ack_timeout: float = 5.0,
        retries: int = 3,
        history_limit: int = 100,
        backoff_base: float = DEFAULT_BASE_S,
        backoff_cap: float = DEFAULT_CAP_S,
        random: Callable[[], float] = _random.random,
        connect_timeout: float = 10.0,
        max_frame: int | None = 16 * 1024 * 1024,
        path: str = DEFAULT_PATH,
        on_state: StateListener | None = None,
    ) -> None:
        options = Options(
            recovery=recovery, ack_timeout=ack_timeout, retries=retries,
            backoff_base=backoff_base, backoff_cap=backoff_cap, random=random,
            connect_timeout=connect_timeout, max_frame=max_frame)
        self.counters = Counters()
        self.store: PositionStore = store if store is not None else MemoryPositionStore()
        self._dispatcher = Dispatcher()
        self._handlers: dict[tuple[str, str], list[Callback]] = {}
        self._message_callbacks: dict[str, list[Callback]] = {}
        self._gap_callbacks: list[Callback] = []
        self._channels: dict[str, Channel] = {}
        self._feeds: dict[str, Feed] = {}
        for nsp in dict.fromkeys(namespaces):
            self._add_namespace(nsp, history_limit)
        if not self._channels:
            raise ValueError("at least one namespace is needed")
        urls = [engine_url(u, path) for u in ([url] if isinstance(url, str) else url)]
        self._connection = Connection(urls, token, self._channels, self._feeds, self._handlers,
                                      options, self.counters, self._dispatcher)
        if on_state is not None:
            self.on_state(on_state)

    def _add_namespace(self, nsp: str, history_limit: int) -> None:
        tracker = SequenceTracker.starting_at(self.store.load(nsp))
        channel = self._channels[nsp] = Channel(nsp, tracker)
        callbacks = self._message_callbacks[nsp] = []

        async def fetch_history(room: str, since: int, limit: int) -> Mapping[str, Any]:
            payload = {"room": room, "since": since, "limit": limit}
            return await self._connection.request(channel, events.ROOM_HISTORY, payload)

        self._feeds[nsp] = Feed(nsp, tracker, self.store, self.counters, self._dispatcher,
                                fetch_history, history_limit, callbacks, self._gap_callbacks)

    # --- state -----------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._connection.state

    @property
    def disconnect_reason(self) -> DisconnectReason | None:
        """Why the client last left ``connected``: a transport loss, or a terminal reason
        (``server_disconnect`` such as a kick, ``connect_error``, ``client_close``)."""
        return self._connection.machine.reason

    @property
    def recovered(self) -> bool:
        """Whether the last (re)connect got every namespace's session back."""
        return all(channel.recovered for channel in self._channels.values())

    def sid(self, namespace: str | None = None) -> str | None:
        return self._channel(namespace).sid

    def rooms(self, namespace: str | None = None) -> list[str]:
        return list(self._channel(namespace).rooms)

    def position(self, room: str, namespace: str | None = None) -> int | None:
        """The last ``seq`` delivered in ``room`` (what ``join`` sends as ``since``)."""
        return self._channel(namespace).tracker.last(room)

    # --- callbacks -------------------------------------------------------------------------

    def on_state(self, callback: StateListener) -> None:
        """``callback(old, new)`` on every state change, in order."""
        self._connection.machine.subscribe(callback)

    def on_message(self, callback: Callback, namespace: str | None = None) -> None:
        """``callback(message)`` for every message, once and in room order (in every
        namespace unless one is named). Plain or coroutine functions."""
        names = [self._channel(namespace).nsp] if namespace is not None else self._channels
        for nsp in names:
            self._message_callbacks[nsp].append(callback)

    def on_gap(self, callback: Callback) -> None:
        """``callback(gap)`` when messages of a room are lost for good (a :class:`Gap`)."""
        self._gap_callbacks.append(callback)

    def on(self, event: str, callback: Callback, namespace: str | None = None) -> None:
        """``callback(*args)`` for other server events (``presence:update``, ``typing:*``,
        ``request:error``), recovery offsets already stripped."""
        self._handlers.setdefault((self._channel(namespace).nsp, event), []).append(callback)

    # --- connection ------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connect every namespace. Raises :class:`ConnectRefused` (terminal) or the
        transport's error if the first connect fails; later losses reconnect by themselves."""
        await self._connection.connect()

    async def close(self) -> None:
        """Leave every namespace and stop; pending calls raise :class:`ClientClosed`."""
        await self._connection.close()

    async def __aenter__(self) -> SwitchboardClient:
        await self.connect()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    def suspend_pongs(self, seconds: float) -> None:
        """Stop answering server pings for ``seconds`` so the gateway drops the transport
        (heartbeat failure): how chaos tests cause a recoverable loss on purpose."""
        loop = asyncio.get_running_loop()
        self._connection.pongs_paused_until = loop.time() + seconds

    async def drain(self) -> None:
        """Wait until every callback due so far has run."""
        await self._dispatcher.drain()

    # --- requests --------------------------------------------------------------------------

    async def join(self, room: str, namespace: str | None = None) -> dict[str, Any]:
        """Join ``room``. With a known position the gateway first replays what came after
        it (``since``). After a reconnect that did not recover, the client re-joins by itself."""
        channel = self._channel(namespace)
        payload: dict[str, Any] = {"room": room}
        since = channel.tracker.last(room)
        if since is not None:
            payload["since"] = since
        channel.rooms[room] = None  # before the request: a reconnect meanwhile re-joins it
        try:
            return await self._connection.request(channel, events.ROOM_JOIN, payload)
        except BaseException:
            channel.rooms.pop(room, None)
            raise

    async def leave(self, room: str, namespace: str | None = None) -> dict[str, Any]:
        channel = self._channel(namespace)
        channel.rooms.pop(room, None)
        return await self._connection.request(channel, events.ROOM_LEAVE, {"room": room})

    async def send(self, room: str, text: str, attachment: bytes | None = None,
                   id: str | None = None, namespace: str | None = None) -> dict[str, Any]:
        """Publish to ``room``; returns the ack ``{ok, id, seq, duplicate}``.

        The idempotency key ``id`` (a uuid4 hex unless given) is made once, so every retry
        of this call carries it and the gateway stores the message once.
        """
        payload: dict[str, Any] = {"room": room, "text": text, "id": id or uuid.uuid4().hex}
        if attachment is not None:
            payload["attachment"] = bytes(attachment)
        channel = self._channel(namespace)
        return await self._connection.request(channel, events.MESSAGE_SEND, payload)

    async def history(self, room: str, *, since: int | None = None, before: int | None = None,
                      limit: int | None = None,
                      namespace: str | None = None) -> dict[str, Any]:
        """``room:history``: ``{ok, messages, complete}``, for scroll-back (gaps in the live
        stream are filled without asking)."""
        payload: dict[str, Any] = {"room": room}
        for key, value in (("since", since), ("before", before), ("limit", limit)):
            if value is not None:
                payload[key] = value
        channel = self._channel(namespace)
        return await self._connection.request(channel, events.ROOM_HISTORY, payload)

    async def emit(self, event: str, *args: Any, namespace: str | None = None) -> None:
        """Send an event without an ack: sent once, lost if the transport drops meanwhile."""
        await self._connection.emit(self._channel(namespace), [event, *args])

    async def emit_with_ack(
        self, event: str, *args: Any,
        timeout: float | None = None,  # noqa: ASYNC109 - per attempt, not for the whole call
        retries: int | None = None, namespace: str | None = None,
    ) -> Any:
        """Send an event and return the first argument of its ack.

        After ``timeout`` seconds without an ack the *same* arguments go again under a new
        ack id, up to ``retries`` times, then :class:`AckTimeout`; an ack of any attempt is
        accepted. A transport loss uses up no attempt: the event goes again once reconnected.
        """
        options = self._connection.options
        return await self._connection.call(
            self._channel(namespace), [event, *args],
            options.ack_timeout if timeout is None else timeout,
            options.retries if retries is None else retries)

    def _channel(self, namespace: str | None) -> Channel:
        if namespace is None:
            return next(iter(self._channels.values()))
        channel = self._channels.get(namespace)
        if channel is None:
            raise ValueError(f"namespace {namespace!r} is not one of this client's")
        return channel
