"""The I/O shell of one Engine.IO connection (over WebSocket or polling, see ``Channel``).

Each message read goes to :class:`~gateway.session.Session`; what comes back is performed:
frames to the outbox, joins and publishes to the fan-out and the broker, closes after a flush;
I/O results go back into the core, which words the reply. No task per connection: actions run
in the read callback, and only one that waits (a NATS round trip) gets a task, later messages
queueing behind it (reading pauses past ``BACKLOG_LIMIT``), so they keep their order. A timer
drives heartbeats; a takeover moves the session elsewhere (:mod:`gateway.connection_handoff`)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from functools import partial

from gateway.actions import (
    Action,
    Announce,
    Close,
    Closed,
    Failed,
    History,
    HookCall,
    HookFailure,
    HookObserved,
    Join,
    JoinFailure,
    Leave,
    NamespaceSocket,
    Observed,
    Opened,
    PresenceQuery,
    Publish,
    SendBinary,
    SendText,
    TypingChange,
)
from gateway.admission import Admission
from gateway.broker import Broker, BrokerUnavailable, PublishResult
from gateway.channel import Channel
from gateway.connection_handoff import ConnectionHandoff
from gateway.delivery import Member
from gateway.durable import DurableSockets, JoinFailed
from gateway.eager import start
from gateway.fanout import Fanout
from gateway.hook_client import HookClient, unavailable
from gateway.lifecycle import QUIET, Lifecycle
from gateway.observe import observe
from gateway.outbox import Flusher, Outbox
from gateway.presence_emitter import PresenceEmitter
from gateway.publish_queue import PublishQueue
from gateway.session import Session
from gateway.websocket_protocol import SENT_CLOSE, WebSocketProtocol
from shared import envelope
from shared.metrics import GatewayMetrics
from shared.protocol.errors import CloseCode
from shared.protocol.frames import BINARY, ws_frame
from shared.room_log import client_message_id

log = logging.getLogger(__name__)
BACKLOG_LIMIT = 64  # messages queued behind a waiting action before reading pauses
Produce = Callable[[], list[Action]]  # an I/O result fed to the core in turn (a hook's answer)
INTERNAL_ERROR = 1011


class Connection(ConnectionHandoff):
    def __init__(
        self,
        ws: Channel,
        session: Session,
        fanout: Fanout,
        durable: DurableSockets,
        admission: Admission,
        broker: Broker,
        metrics: GatewayMetrics,
        flusher: Flusher,
        budget: int,
        presence: PresenceEmitter | None = None,
        on_finished: Callable[[Connection], None] | None = None,
        hooks: HookClient | None = None,
        lifecycle: Lifecycle | None = None,
    ) -> None:
        self.ws = ws
        self.session = session
        self._fanout = fanout
        self._durable = durable
        self._admission = admission
        self.eio_sid = session.eio_sid
        self._broker = broker
        self._presence = presence
        self._lifecycle = lifecycle or QUIET
        self.members: dict[str, Member] = {}
        self._publishes: PublishQueue[Publish] = PublishQueue(self._published)
        self._metrics = metrics
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._on_finished = on_finished
        self._busy: asyncio.Task[None] | None = None
        self._backlog: deque[str | bytes | Produce] | None = None  # made when needed: ~600 B
        self._hooks = hooks.call if hooks is not None else unavailable
        self._lost = False
        self._paused = False
        assert ws.transport is not None
        self.outbox = Outbox(ws.transport, flusher, budget, self._slow_consumer, ws.take_preface())

    def start(self, upgrades: tuple[str, ...] = ()) -> None:
        """The transport is open: the open packet goes out and the heartbeat starts."""
        self._metrics.connections.inc()
        self._run(self.session.open(upgrades))
        self._arm_timer()

    # --- the pump: messages in order, a task only while an action waits ------------------

    def receive(self, message: str | bytes | Produce) -> None:
        """A message read (or an I/O result, see :meth:`_feed`), handled in arrival order."""
        if self._closing:
            return  # the close handshake is under way; what the client still says is moot
        if self._busy is not None:
            if self._backlog is None:
                self._backlog = deque()
            self._backlog.append(message)
            if len(self._backlog) >= BACKLOG_LIMIT and not self._paused:
                self._paused = True
                self.ws.pause_reading()
            return
        now = self._loop.time()
        actions = message() if callable(message) else self.session.receive(message, now)
        if actions:
            self._run(actions)

    def lost(self) -> None:
        """The transport is gone; once the actions in progress are done, the session ends."""
        self._lost = True
        if self._timer is not None:
            self._timer.cancel()
        if self._busy is None:
            self._end()

    def closing(self) -> None:
        """The WebSocket layer answered a close or refused a frame: nothing more goes out."""
        self._closing = True
        self.outbox.transport = SENT_CLOSE

    def switch(self, ws: WebSocketProtocol) -> None:
        """A polling session upgraded: frames go to ``ws`` from now on, and it reads for us."""
        self.ws = ws
        if not self._closing and ws.transport is not None:
            self.outbox.transport = ws.transport
        ws.hand_over(self)

    def _run(self, actions: list[Action]) -> None:
        try:
            self._busy = start(self._perform(actions))
        except Exception:
            log.exception("connection %s: an action failed", self.session.eio_sid[:6])
            self.close(INTERNAL_ERROR, "internal error")
            return
        if self._busy is not None:
            self._busy.add_done_callback(self._resumed)

    def _resumed(self, done: asyncio.Task[None]) -> None:
        self._busy = None
        if not done.cancelled() and done.exception() is not None:
            log.error("connection %s: an action failed", self.session.eio_sid[:6],
                      exc_info=done.exception())
            self.close(INTERNAL_ERROR, "internal error")
        backlog = self._backlog
        while backlog and self._busy is None:
            self.receive(backlog.popleft())
        if not backlog:
            self._backlog = None
        if self._busy is not None:
            return
        if self._paused:
            self._paused = False
            self.ws.resume_reading()
        if self._lost:
            self._end()

    def _end(self) -> None:
        self._lost = False  # once
        self._backlog = None
        self._busy = start(self._finish())

    async def _finish(self) -> None:
        self._metrics.connections.dec()
        log.info("connection %s closed: code=%s namespaces=%s", self.session.eio_sid[:6],
                 self.ws.close_code, ",".join(self.session.sockets) or "-")
        try:
            await self._perform(self.session.transport_closed())
        finally:
            self._publishes.close()
            try:
                await self._admission.release(self)
            finally:
                if self._on_finished is not None:
                    self._on_finished(self)

    # --- timers ---------------------------------------------------------------------------

    def _arm_timer(self) -> None:
        delay = max(0.0, self.session.next_deadline() - self._loop.time())
        self._timer = self._loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        for action in self.session.on_timer(self._loop.time()):
            self._perform_now(action)
        if not self.session.closed and not self._closing:
            self._arm_timer()

    # --- actions --------------------------------------------------------------------------

    def _perform_now(self, action: Action) -> None:
        """Actions that need no await: frames and closes."""
        if isinstance(action, SendText):
            self.outbox.push(ws_frame(action.text.encode()))
        elif isinstance(action, SendBinary):
            self.outbox.push(ws_frame(action.data, BINARY))
        elif isinstance(action, Close):
            self.close(action.code, action.reason)
        elif isinstance(action, Observed | Failed | HookObserved):
            observe(self._metrics, action)
        elif isinstance(action, Announce):
            self._presence_changed(action.socket)
        elif isinstance(action, HookCall):
            self._hooks(action, partial(self._feed_hook, action))

    async def _perform(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, SendText | SendBinary | Close | Observed | Failed | Announce
                          | HookCall | HookObserved):
                self._perform_now(action)
            elif isinstance(action, Join):
                await self._join(action)
            elif isinstance(action, Leave):
                await self._leave(action)
            elif isinstance(action, Publish):
                await self._publish(action)
            elif isinstance(action, History):
                await self._history(action)
            elif isinstance(action, Opened):
                await self._admission.paced(partial(self._opened, action))
            elif isinstance(action, Closed):
                await self._closed(action)
            elif isinstance(action, TypingChange):
                await self._typing(action)
            elif isinstance(action, PresenceQuery):
                await self._presence_query(action)

    def close(self, code: int, reason: str) -> None:
        """Flush what is queued, then close the transport with ``code``."""
        if self._closing:
            return
        self._closing = True
        self._metrics.closes.labels(str(code)).inc()
        log.info("closing connection %s: code=%s reason=%s", self.session.eio_sid[:6], code,
                 reason)
        self.outbox.flush()
        self.ws.close(code, reason)
        self.outbox.transport = SENT_CLOSE

    def _slow_consumer(self) -> None:
        self.close(CloseCode.SLOW_CONSUMER, "slow consumer")

    async def _opened(self, action: Opened) -> None:
        socket = action.socket
        if not await self._admission.admit(self, socket.identity.sub, socket.nsp, action.restore):
            self._perform_all_now(self.session.refused(socket))
            return
        member = self.members[socket.nsp] = Member(self.outbox, offsets=socket.pid is not None)
        self._metrics.sockets.labels(socket.nsp).inc()
        resumed = None
        if socket.durable:
            try:
                resumed = await self._durable.open(socket, member, action.restore)
            except BrokerUnavailable:
                log.warning("could not save a session; the socket is not recoverable")
        else:
            for room in list(socket.rooms):
                try:
                    await self._fanout.join((socket.nsp, room), member)
                except BrokerUnavailable:
                    log.warning("could not subscribe a user room; the socket misses direct events")
        self._perform_all_now(self.session.opened(socket, resumed.recovered if resumed else None))
        if resumed is not None:
            self._durable.resume(member, resumed)
        self._lifecycle.connected(socket)

    async def kick(self, user: str, reason: str) -> bool:
        """A backend asked to end this user's sockets here (server DISCONNECT, for good)."""
        actions = self.session.kick(user, reason)
        if not actions:
            return False
        await self._perform(actions)
        return True

    async def _closed(self, action: Closed) -> None:
        socket = action.socket
        member = self.members.pop(socket.nsp, None)
        self._metrics.sockets.labels(socket.nsp).dec()
        if member is not None:
            self._presence_changed(socket, alive=False)
            self._lifecycle.disconnected(socket, "left" if action.final else "transport close")
            for room in action.rooms:
                await self._fanout.leave((socket.nsp, room), member)
        if socket.durable:
            await self._durable.closed(socket, action.final)

    async def _join(self, action: Join) -> None:
        socket = action.socket
        member = self.members.get(socket.nsp)
        if member is None:
            return
        try:
            if socket.durable:
                await self._durable.join(socket, member, action.room, action.since)
            else:
                await self._fanout.join((socket.nsp, action.room), member)
        except JoinFailed as failed:
            self._perform_all_now(self.session.join_failed(action, failed.why))
            return
        except BrokerUnavailable:
            self._perform_all_now(self.session.join_failed(action, JoinFailure.UNAVAILABLE))
            return
        self._perform_all_now(self.session.joined(action))

    async def _leave(self, action: Leave) -> None:
        """The core took the room off the socket already; its ack follows this action."""
        socket = action.socket
        member = self.members.get(socket.nsp)
        if member is not None:
            await self._fanout.leave((socket.nsp, action.room), member)
            if socket.durable:
                await self._durable.leave(socket, action.room)

    async def _history(self, action: History) -> None:
        try:
            page = await self._durable.history(action.socket.nsp, action.room, action.since,
                                                action.before, action.limit)
        except BrokerUnavailable:
            self._perform_all_now(self.session.log_unavailable(action))
            return
        self._perform_all_now(self.session.history_page(action, page))

    def _presence_changed(self, socket: NamespaceSocket, alive: bool = True) -> None:
        if self._presence is not None:
            self._presence.socket(socket, alive)

    async def _typing(self, action: TypingChange) -> None:
        socket = action.socket
        if self._presence is not None and socket.nsp in self._presence.namespaces:
            self._presence.typing(socket, action.room, action.active)
            self._perform_all_now(self.session.typing_routed(action))
            return
        await self._perform(self.session.typing_unrouted(action))

    async def _presence_query(self, action: PresenceQuery) -> None:
        members = None
        if self._presence is not None:
            members = await self._presence.members(action.socket.nsp, action.room)
        self._perform_all_now(self.session.presence_answer(action, members))

    async def _publish(self, action: Publish) -> None:
        queue = self._publishes
        if queue.full:
            await queue.wait_room()
        body = envelope.pack(action.args, action.attachments)
        msg_id = None
        if action.message_id is not None:
            msg_id = client_message_id(action.socket.identity.sub, action.message_id)
        done = queue.begin(action)
        try:
            self._broker.begin_publish(action.socket.nsp, action.room, body, msg_id,
                                       action.logged, done)
        except BrokerUnavailable:
            queue.cancel_last()
            self._published(action, None)

    def _published(self, action: Publish, result: PublishResult | None) -> None:
        if result is not None:
            self._metrics.published.labels(action.socket.nsp).inc()
        if action.after is not None:  # a hook reply's ack, emits and disconnect may follow
            self._feed(partial(self.session.published, action, result))
            return
        self._perform_all_now(self.session.published(action, result))

    def _feed_hook(self, call: HookCall, outcome: bytes | HookFailure) -> None:
        self._feed(partial(self.session.hook_answered, call, outcome))

    def _feed(self, produce: Produce) -> None:
        """An I/O result whose actions may wait (joins, publishes, a disconnect): it takes
        the pump's turn on a later pass, behind whatever is being handled."""
        self._loop.call_soon(self.receive, produce)

    def _perform_all_now(self, actions: list[Action]) -> None:
        for action in actions:
            self._perform_now(action)
