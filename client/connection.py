"""The life of the client's connection: connect, reconnect, recover, route, call.

One Engine.IO connection multiplexes the client's namespaces. After any transport loss it
reconnects with backoff, asks every namespace for its session back (``pid``/offset) and,
where the session did not come back, re-joins the namespace's rooms with ``since``. A server
DISCONNECT (kick) or CONNECT_ERROR (refused token) ends the session for good. Packets are
routed on the reader task, which never waits for the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random as _random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import InvalidStatus, WebSocketException

from client.auth import TokenSource, resolve_token
from client.backoff import DEFAULT_BASE_S, DEFAULT_CAP_S, reconnect_delays
from client.channel import Channel
from client.counters import Counters
from client.dispatch import Callback, Dispatcher
from client.errors import AckTimeout, ClientClosed, ConnectRefused, RequestFailed, TransportLost
from client.feed import Feed
from client.link import Link
from client.recovery import after_connect, connect_auth, rejoin_payloads, split_offset
from client.state import ConnectionState, DisconnectReason, StateMachine
from client.transport import Transport
from shared.protocol import events
from shared.protocol.packets import Packet, PacketType

log = logging.getLogger(__name__)

RETRYABLE = (OSError, TimeoutError, TransportLost, WebSocketException)
CLIENT_CLOSE = DisconnectReason("client_close", "closed by the client")
CALLBACK_GRACE_S = 1.0  # callbacks already due still run when the session ends


@dataclass(frozen=True, slots=True)
class Options:
    """How the connection behaves; every field is a constructor option of the client."""

    recovery: bool = True
    ack_timeout: float = 5.0  # seconds per attempt
    retries: int = 3  # attempts after the first one timed out
    backoff_base: float = DEFAULT_BASE_S
    backoff_cap: float = DEFAULT_CAP_S
    random: Callable[[], float] = field(default=_random.random)
    connect_timeout: float = 10.0  # seconds for the WebSocket, open packet and CONNECTs
    max_frame: int | None = 16 * 1024 * 1024


class Connection:
    def __init__(self, urls: Sequence[str], token: TokenSource, channels: Mapping[str, Channel],
                 feeds: Mapping[str, Feed], handlers: Mapping[tuple[str, str], list[Callback]],
                 options: Options, counters: Counters, dispatcher: Dispatcher) -> None:
        if not urls:
            raise ValueError("at least one gateway URL is needed")
        self._urls = list(urls)
        self._url_index = 0
        self._token = token
        self.channels = channels
        self._feeds = feeds
        self._handlers = handlers
        self.options = options
        self.counters = counters
        self._dispatcher = dispatcher
        self.machine = StateMachine()
        self._link: Link | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self.pongs_paused_until = 0.0

    @property
    def state(self) -> ConnectionState:
        return self.machine.state

    # --- lifecycle -------------------------------------------------------------------------

    async def connect(self) -> None:
        if self.state is not ConnectionState.DISCONNECTED:
            raise RuntimeError(f"connect() while {self.state}")
        self._closing = False
        self._unlink()
        self.machine.move(ConnectionState.CONNECTING)
        self._dispatcher.start()
        try:
            link = await self._establish(first=True)
        except BaseException as exc:
            reason = _refusal(exc) or DisconnectReason("transport", f"connect failed: {exc!r}")
            await self._finish(reason)
            raise
        if self._closing:  # close() ran while the first connect was under way
            await link.close(CLIENT_CLOSE)
            raise ClientClosed("closed while connecting")
        self.machine.move(ConnectionState.CONNECTED)
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise(link))

    async def close(self) -> None:
        if self.state is ConnectionState.DISCONNECTED:
            return
        self._closing = True
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None and supervisor is not asyncio.current_task():
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
        link = self._link
        if link is not None and link.alive:
            for nsp in self.channels:
                with contextlib.suppress(TransportLost):
                    await link.transport.send(Packet(PacketType.DISCONNECT, nsp))
            await link.close(CLIENT_CLOSE)
        await self._finish(CLIENT_CLOSE)

    async def _supervise(self, link: Link) -> None:
        """Reconnect after every transport loss until the session ends."""
        while True:
            reason = await asyncio.shield(link.ended)  # cancelling us must not end the link
            self._unlink()
            if self._closing:
                return
            if reason.terminal:
                log.warning("session ended: %s %s", reason.kind, reason.message)
                await self._finish(reason)
                return
            log.info("transport lost (%s); reconnecting", reason.message)
            self.machine.move(ConnectionState.RECONNECTING, reason)
            next_link = await self._reconnect()
            if next_link is None:
                return
            link = next_link
            self.machine.move(ConnectionState.CONNECTED)

    async def _reconnect(self) -> Link | None:
        o = self.options
        for delay in reconnect_delays(o.backoff_base, o.backoff_cap, o.random):
            await asyncio.sleep(delay)
            self.counters.reconnect_attempts += 1
            # Several URLs (gateways without a load balancer): a lost one is tried last.
            self._url_index = (self._url_index + 1) % len(self._urls)
            try:
                return await self._establish(first=False)
            except Exception as exc:  # a failing token callable is retried like the network
                refusal = _refusal(exc)
                if refusal is not None:
                    await self._finish(refusal)
                    return None
                log.log(logging.INFO if isinstance(exc, RETRYABLE) else logging.WARNING,
                        "reconnect attempt failed: %r", exc)
        raise AssertionError("the reconnect schedule is endless")

    async def _establish(self, first: bool) -> Link:
        """Open a transport, CONNECT every namespace, then bring back the rooms of those
        that did not recover their session."""
        token = await resolve_token(self._token)
        loop = asyncio.get_running_loop()
        transport = await Transport.open(
            self._urls[self._url_index], open_timeout=self.options.connect_timeout,
            max_size=self.options.max_frame,
            answer_pings=lambda: loop.time() >= self.pongs_paused_until)
        link = Link(transport, self._on_packet)
        try:
            async with asyncio.timeout(self.options.connect_timeout):
                sent = await self._connect_namespaces(link, token)
            self._link = link
            await self._restore_rooms(link)
        except BaseException:
            await link.close(DisconnectReason("transport", "connect failed"))
            self._unlink()
            raise
        self._count_connect(first, sent)
        for channel in self.channels.values():
            channel.ready.set()
        return link

    async def _connect_namespaces(self, link: Link, token: str) -> dict[str, str | None]:
        sent: dict[str, str | None] = {}
        loop = asyncio.get_running_loop()
        for channel in self.channels.values():
            channel.reply = loop.create_future()
            sent[channel.nsp] = channel.recovery.pid
            auth = connect_auth(token, channel.recovery, self.options.recovery)
            await link.transport.send(Packet(PacketType.CONNECT, channel.nsp, auth))
        for channel in self.channels.values():
            assert channel.reply is not None
            reply = await _first(channel.reply, link)
            if not isinstance(reply, dict) or not isinstance(reply.get("sid"), str):
                raise TransportLost(f"{channel.nsp}: CONNECT reply without sid")
            pid = sent[channel.nsp]
            channel.recovery = after_connect(channel.recovery, pid, reply)
            channel.recovered = pid is not None and channel.recovery.pid == pid
            channel.sid = reply["sid"]
            channel.connected.set()
        return sent

    async def _restore_rooms(self, link: Link) -> None:
        for channel in self.channels.values():
            if channel.recovered:
                continue
            for payload in rejoin_payloads(list(channel.rooms), channel.tracker.positions()):
                try:
                    await self.request(channel, events.ROOM_JOIN, payload, link=link)
                except RequestFailed as failed:
                    log.warning("could not re-join %s in %s: %s", payload["room"],
                                channel.nsp, failed)
                    channel.rooms.pop(payload["room"], None)
                else:
                    self.counters.rejoins += 1

    def _count_connect(self, first: bool, sent: Mapping[str, str | None]) -> None:
        self.counters.connects += 1
        if first or all(pid is None for pid in sent.values()):
            return
        if all(channel.recovered for channel in self.channels.values()):
            self.counters.recoveries += 1
        else:
            self.counters.recovery_misses += 1

    def _unlink(self) -> None:
        self._link = None
        for channel in self.channels.values():
            channel.unlink()

    async def _finish(self, reason: DisconnectReason) -> None:
        """The session is over: wake every waiting call (they raise ``ClientClosed``)."""
        self._unlink()
        for channel in self.channels.values():
            channel.reset_session()
        self.machine.move(ConnectionState.DISCONNECTED, reason)
        for channel in self.channels.values():
            channel.ready.set()
        for feed in self._feeds.values():
            await feed.close()
        await self._dispatcher.stop(grace=CALLBACK_GRACE_S)

    # --- packets from the gateway (reader task; never waits) -----------------------------

    def _on_packet(self, packet: Packet) -> DisconnectReason | None:
        channel = self.channels.get(packet.nsp)
        if channel is None:
            return None  # a namespace this client never asked for
        kind = packet.type
        if kind is PacketType.EVENT:
            self._on_event(channel, packet)
        elif kind is PacketType.ACK:
            channel.acks.resolve(packet.id, packet.data)
        elif kind is PacketType.CONNECT:
            if channel.reply is not None and not channel.reply.done():
                channel.reply.set_result(packet.data)
        elif kind is PacketType.CONNECT_ERROR:
            body = packet.data if isinstance(packet.data, dict) else {}
            refused = ConnectRefused(packet.nsp, str(body.get("message", "refused")),
                                     body.get("data"))
            if channel.reply is not None and not channel.reply.done():
                channel.reply.set_exception(refused)
                return None
            return _refusal(refused)
        elif kind is PacketType.DISCONNECT:
            return DisconnectReason("server_disconnect", "io server disconnect", packet.nsp)
        return None

    def _on_event(self, channel: Channel, packet: Packet) -> None:
        name, *raw = packet.data
        args, offset = split_offset(raw, channel.recovery.pid is not None,
                                    packet.id is not None)
        if offset is not None:
            channel.recovery = channel.recovery.with_offset(offset)
            self.counters.offsets_received += 1
        if packet.id is not None and self._link is not None:
            # Socket.IO peers always answer an ack request (the gateway makes none today).
            ack = Packet(PacketType.ACK, channel.nsp, [], packet.id)
            asyncio.get_running_loop().create_task(_send_quietly(self._link, ack))
        if name == events.MESSAGE_RECEIVED and args and isinstance(args[0], dict):
            self._feeds[channel.nsp].receive(args[0])
            return
        for callback in self._handlers.get((channel.nsp, str(name)), ()):
            self._dispatcher.submit(callback, *args)

    # --- calls -----------------------------------------------------------------------------

    async def emit(self, channel: Channel, data: list[Any]) -> None:
        link = await self._usable_link(channel, None)
        await link.transport.send(Packet(PacketType.EVENT, channel.nsp, data))

    async def call(self, channel: Channel, data: list[Any], per_attempt: float,
                   retries: int, link: Link | None = None) -> Any:
        """Send ``data`` with an ack id and return the ack's first argument.

        A timeout re-sends the same ``data`` under a new id (``retries`` times, then
        :class:`AckTimeout`); an ack of any attempt is accepted. A transport loss uses up no
        attempt: the event goes again once reconnected. ``link`` pins the call to one link
        (requests made while connecting): its loss then raises :class:`TransportLost`.
        """
        result: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        ids: list[int] = []
        timeouts = 0
        try:
            while True:
                current = await self._usable_link(channel, link)
                ack_id = channel.acks.register(result)
                ids.append(ack_id)
                with contextlib.suppress(TransportLost):
                    await current.transport.send(
                        Packet(PacketType.EVENT, channel.nsp, data, ack_id))
                waiting: set[asyncio.Future[Any]] = {result, current.ended}
                await asyncio.wait(waiting, timeout=per_attempt,
                                   return_when=asyncio.FIRST_COMPLETED)
                if result.done():
                    args = result.result()
                    return args[0] if args else None
                if not current.alive:
                    continue
                timeouts += 1
                if timeouts > retries:
                    raise AckTimeout(str(data[0]), timeouts)
                self.counters.ack_retries += 1
        finally:
            channel.acks.forget(ids)
            result.cancel()

    async def _usable_link(self, channel: Channel, pinned: Link | None) -> Link:
        if pinned is not None:
            if not pinned.alive:
                raise TransportLost("the connection was lost while connecting")
            return pinned
        while True:
            if self.state is ConnectionState.DISCONNECTED:
                raise ClientClosed(_describe(self.machine.reason))
            link = self._link
            if link is not None and link.alive and channel.ready.is_set():
                return link
            if channel.ready.is_set():
                await asyncio.sleep(0)  # the link just ended; unlink clears ready next
            else:
                await channel.ready.wait()

    async def request(self, channel: Channel, event: str, payload: Mapping[str, Any],
                      link: Link | None = None) -> dict[str, Any]:
        """An event of the contract: ``{ok: true, ...}`` or :class:`RequestFailed`;
        ``rate_limited`` answers are waited out and retried with the same payload."""
        o = self.options
        for attempt in range(o.retries + 1):
            ack = await self.call(channel, [event, dict(payload)], o.ack_timeout, o.retries,
                                  link)
            failure = _failure(event, ack)
            if failure is None:
                return dict(ack)
            waitable = failure.code == "rate_limited" and failure.retry_after_ms is not None
            if not waitable or attempt == o.retries:
                raise failure
            await asyncio.sleep((failure.retry_after_ms or 0) / 1000)
        raise AssertionError("unreachable")


async def _first(reply: asyncio.Future[Any], link: Link) -> Any:
    """The CONNECT reply, unless the link ends first."""
    await asyncio.wait({reply, link.ended}, return_when=asyncio.FIRST_COMPLETED)
    if reply.done():
        return reply.result()
    raise TransportLost(f"lost while connecting: {link.ended.result().message}")


async def _send_quietly(link: Link, packet: Packet) -> None:
    with contextlib.suppress(TransportLost):
        await link.transport.send(packet)


def _failure(event: str, ack: Any) -> RequestFailed | None:
    if isinstance(ack, dict) and ack.get("ok") is True:
        return None
    error = ack.get("error") if isinstance(ack, dict) else None
    if not isinstance(error, dict):
        return RequestFailed(event, "internal", f"unexpected ack {ack!r}")
    retry = error.get("retry_after_ms")
    return RequestFailed(event, str(error.get("code", "internal")),
                         str(error.get("message", "")),
                         retry if isinstance(retry, int) else None)


def _refusal(exc: BaseException) -> DisconnectReason | None:
    """Failures that must not be retried: a namespace refused the client, or the upgrade
    was refused as unauthorised or forbidden (retrying cannot change the answer)."""
    if isinstance(exc, ConnectRefused):
        return DisconnectReason("connect_error", exc.message, exc.namespace, exc.data)
    if isinstance(exc, InvalidStatus) and exc.response.status_code in (401, 403):
        return DisconnectReason("connect_error", f"HTTP {exc.response.status_code}")
    return None


def _describe(reason: DisconnectReason | None) -> str:
    if reason is None:
        return "not connected"
    return f"{reason.kind}: {reason.message}"
