"""The shared NATS connection on fakes: how the client is connected (reconnect forever),
what the callbacks count and log (errors at most once a second, on a fake clock), stream and
bucket set-up that is safe to race, and the start-up retry with its doubling, capped delay
bounded by ``within`` (fake loop time, fake sleep)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest
from nats.aio.client import Client
from nats.errors import NoServersError
from nats.js.api import KeyValueConfig, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError, ServiceUnavailableError
from prometheus_client import CollectorRegistry

from shared import natsconn
from shared.metrics import NatsMetrics
from tests.support.fake_clock import FakeClock
from tests.unit.test_room_log import FakeJetStream

Callback = Callable[..., Awaitable[None]]


class FakeClient:
    """What ``connect`` uses of a nats-py client: ``connect(**options)`` and two flags."""

    def __init__(self) -> None:
        self.options: dict[str, Any] = {}
        self.is_closed = False
        self.is_draining = False

    async def connect(self, **options: Any) -> None:
        self.options = options

    def callback(self, name: str) -> Callback:
        return cast(Callback, self.options[name])


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, {"service": "gateway", **labels})


async def connected(registry: CollectorRegistry,
                    events: list[str] | None = None) -> FakeClient:
    client = FakeClient()
    seen = events if events is not None else []
    nc = await natsconn.connect(("nats://a:4222", "nats://b:4222"), "gw-1",
                                NatsMetrics(registry, "gateway"), cast(Client, client),
                                on_disconnect=lambda: seen.append("down"),
                                on_reconnect=lambda: seen.append("up"))
    assert nc is cast(Client, client)
    return client


async def test_connect_reconnects_forever_and_reports_connected() -> None:
    registry = CollectorRegistry()
    client = await connected(registry)
    options = client.options
    assert options["servers"] == ["nats://a:4222", "nats://b:4222"]
    assert options["name"] == "gw-1"
    assert options["max_reconnect_attempts"] == -1 and options["allow_reconnect"] is True
    assert sample(registry, "switchboard_nats_connected") == 1.0


async def test_disconnect_and_reconnect_are_counted_then_passed_on(
        caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    events: list[str] = []
    client = await connected(registry, events)
    with caplog.at_level(logging.INFO, "shared.natsconn"):
        await client.callback("disconnected_cb")()
        assert sample(registry, "switchboard_nats_connected") == 0.0
        await client.callback("reconnected_cb")()
    assert events == ["down", "up"]
    assert sample(registry, "switchboard_nats_disconnects_total") == 1.0
    assert sample(registry, "switchboard_nats_reconnects_total") == 1.0
    assert sample(registry, "switchboard_nats_connected") == 1.0
    assert [r.getMessage() for r in caplog.records] == ["nats disconnected", "nats reconnected"]


async def test_a_disconnect_while_closing_is_not_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    client = await connected(CollectorRegistry())
    client.is_draining = True
    await client.callback("disconnected_cb")()
    assert not caplog.records


async def test_errors_are_all_counted_but_logged_at_most_once_a_second(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(1_000.0)
    monkeypatch.setattr(natsconn, "time", SimpleNamespace(monotonic=clock))
    registry = CollectorRegistry()
    client = await connected(registry)
    on_error = client.callback("error_cb")
    for step in (0.0, 0.1, 0.5, 0.5, 0.1):  # t = 1000, 1000.1, 1000.6, 1001.1, 1001.2
        clock.now += step
        await on_error(ValueError("slow consumer"))
    assert sample(registry, "switchboard_nats_errors_total", kind="ValueError") == 5.0
    assert [r.getMessage() for r in caplog.records] == [
        "nats error: ValueError: slow consumer"] * 2  # at 1000 and at 1001.1


async def test_ensure_stream_creates_updates_or_keeps() -> None:
    fake = FakeJetStream()
    js = cast(JetStreamContext, fake)
    await natsconn.ensure_stream(js, StreamConfig(name="S", subjects=["a"]))
    await natsconn.ensure_stream(js, StreamConfig(name="S", subjects=["a"]))  # same: kept
    assert fake.updates == []
    await natsconn.ensure_stream(js, StreamConfig(name="S", subjects=["b"]), update=False)
    assert fake.updates == [] and fake.streams["S"] == StreamConfig(name="S", subjects=["a"])
    await natsconn.ensure_stream(js, StreamConfig(name="S", subjects=["b"]))
    assert fake.updates == ["S"] and fake.streams["S"] == StreamConfig(name="S", subjects=["b"])


class FakeKeyValues:
    def __init__(self, exists: bool) -> None:
        self.exists = exists
        self.calls: list[str] = []

    async def create_key_value(self, config: KeyValueConfig) -> str:
        self.calls.append(f"create {config.bucket}")
        if self.exists:
            raise BadRequestError()
        return f"new {config.bucket}"

    async def key_value(self, bucket: str) -> str:
        self.calls.append(f"bind {bucket}")
        return f"old {bucket}"


@pytest.mark.parametrize(("exists", "expected"), [(False, "new B"), (True, "old B")])
async def test_key_value_creates_the_bucket_or_binds_the_existing_one(
        exists: bool, expected: str) -> None:
    fake = FakeKeyValues(exists)
    bucket = await natsconn.key_value(cast(JetStreamContext, fake), KeyValueConfig(bucket="B"))
    assert cast(object, bucket) == expected
    assert fake.calls == (["create B", "bind B"] if exists else ["create B"])


class FakeLoop:
    """Loop time that moves only when the fake sleep says so."""

    def __init__(self) -> None:
        self.clock = FakeClock(0.0)
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.clock.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.clock.now += delay


@pytest.fixture
def loop(monkeypatch: pytest.MonkeyPatch) -> FakeLoop:
    fake = FakeLoop()
    monkeypatch.setattr(natsconn, "asyncio",
                        SimpleNamespace(get_running_loop=lambda: fake, sleep=fake.sleep))
    return fake


def failing(times: int, error: Exception) -> Callable[[], Awaitable[str]]:
    calls = 0

    async def step() -> str:
        nonlocal calls
        calls += 1
        if calls <= times:
            raise error
        return f"ready after {calls}"

    return step


async def test_when_ready_returns_at_once_when_the_step_succeeds(loop: FakeLoop) -> None:
    assert await natsconn.when_ready("setup", failing(0, TimeoutError())) == "ready after 1"
    assert loop.sleeps == []


@pytest.mark.parametrize("error", [TimeoutError(), NoServersError(),
                                   ServiceUnavailableError()])
async def test_when_ready_retries_with_a_doubling_delay_capped_at_two_seconds(
        loop: FakeLoop, error: Exception, caplog: pytest.LogCaptureFixture) -> None:
    assert await natsconn.when_ready("setup", failing(6, error)) == "ready after 7"
    assert loop.sleeps == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert len(caplog.records) == 6 and "NATS not ready" in caplog.records[0].getMessage()


async def test_when_ready_gives_up_rather_than_sleep_past_within(loop: FakeLoop) -> None:
    with pytest.raises(TimeoutError):
        await natsconn.when_ready("setup", failing(100, TimeoutError()), within=4.0)
    assert loop.sleeps == [0.25, 0.5, 1.0, 2.0]  # 3.75 s; one more 2 s would pass 4 s
    assert sum(loop.sleeps) <= 4.0


async def test_when_ready_does_not_retry_other_errors(loop: FakeLoop) -> None:
    with pytest.raises(ValueError):
        await natsconn.when_ready("setup", failing(1, ValueError("bug")))
    assert loop.sleeps == []
