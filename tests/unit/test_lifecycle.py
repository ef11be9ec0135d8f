"""The lifecycle stream's event body, its stream and subjects, and the publisher's bounds
(driven with a stand-in for JetStream: the publisher's only dependency is its publish)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from gateway.actions import NamespaceSocket
from gateway.lifecycle import MAX_IN_FLIGHT, Lifecycle, lifecycle_body
from shared.jwtauth import Identity
from shared.metrics import GatewayMetrics
from shared.room_log.streams import LogSettings, stream_configs
from shared.subjects import Subjects


def socket(nsp: str = "/orders") -> NamespaceSocket:
    return NamespaceSocket(nsp, "s1~gw", Identity("ann", None, None, None))


def test_the_body_names_the_socket_and_its_gateway() -> None:
    body = orjson.loads(lifecycle_body(socket(), "gw-1", "left", 12.5))
    assert body == {"nsp": "/orders", "sid": "s1~gw", "user": "ann", "gateway": "gw-1",
                    "reason": "left", "ts": 12500}


def test_subjects_and_the_stream() -> None:
    subjects = Subjects("sb")
    assert subjects.lifecycle("/order-book", "connect") == "sb.lifecycle.order-book.connect"
    assert subjects.lifecycle_wildcard() == "sb.lifecycle.>"
    names = [c.name for c in stream_configs(subjects, LogSettings(lifecycle=True))]
    assert names[-1] == "SB_LIFECYCLE"
    assert "SB_LIFECYCLE" not in [c.name for c in stream_configs(subjects, LogSettings())]


class Js:
    def __init__(self, fail: int = 0) -> None:
        self.published: list[tuple[str, bytes, dict[str, str]]] = []
        self.fail = fail
        self.gate = asyncio.Event()
        self.gate.set()

    async def publish(self, subject: str, body: bytes, timeout: float,  # noqa: ASYNC109
                      headers: dict[str, str]) -> Any:
        await self.gate.wait()
        if self.fail:
            self.fail -= 1
            raise TimeoutError
        self.published.append((subject, body, headers))


def lifecycle(js: Js) -> tuple[Lifecycle, GatewayMetrics]:
    metrics = GatewayMetrics(CollectorRegistry())
    return Lifecycle(js, Subjects("sb"), "gw-1", frozenset({"/orders"}),  # type: ignore[arg-type]
                     metrics.lifecycle_failures), metrics


async def test_only_hooked_namespaces_and_a_retry_keeps_the_message_id() -> None:
    js = Js(fail=1)
    events, _ = lifecycle(js)
    events.connected(socket("/chat"))
    events.disconnected(socket(), "transport close")
    await events.close()
    assert [(s, h) for s, _, h in js.published] == [
        ("sb.lifecycle.orders.disconnect", {"Nats-Msg-Id": "s1~gw.disconnect"})]


async def test_past_the_bound_events_are_dropped_and_counted() -> None:
    js = Js()
    js.gate.clear()
    events, metrics = lifecycle(js)
    for _ in range(MAX_IN_FLIGHT + 3):
        events.connected(socket())
    assert metrics.lifecycle_failures.labels("dropped")._value.get() == 3
    js.gate.set()
    await events.close()
    assert len(js.published) == MAX_IN_FLIGHT
