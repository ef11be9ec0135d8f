"""The process entry every service shares: settings from the environment, logging set up
with the service's name and level, the runner given the settings and one stop event that
SIGTERM and SIGINT set, and a configuration error as exit status 2 with the reason on stderr
(whether loading or the runner found it)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest

from shared import logs, service
from shared.config import ConfigError, ServiceSettings
from tests.support.timing import UNIT


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """No SB_* variable from outside; logging set-up recorded instead of replacing the
    test run's handlers; signal dispositions restored whatever happens."""
    for name in [n for n in os.environ if n.startswith("SB_")]:
        monkeypatch.delenv(name)
    setups: list[tuple[str, str]] = []
    monkeypatch.setattr(logs, "setup", lambda level, name: setups.append((level, name)))
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield setups
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_the_runner_gets_the_settings_and_logging_is_set_up_first(
        monkeypatch: pytest.MonkeyPatch, environment: list[tuple[str, str]]) -> None:
    monkeypatch.setenv("SB_PORT", "9123")
    monkeypatch.setenv("SB_LOG_LEVEL", "debug")
    seen: list[tuple[int, bool, list[tuple[str, str]]]] = []

    async def runner(settings: ServiceSettings, stop: asyncio.Event) -> None:
        seen.append((settings.port, stop.is_set(), list(environment)))

    service.main("router", ServiceSettings, runner)
    assert seen == [(9123, False, [("debug", "router")])]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_set_the_stop_event(sig: signal.Signals) -> None:
    stopped: list[bool] = []

    async def runner(settings: ServiceSettings, stop: asyncio.Event) -> None:
        # never deliver a signal nobody handles: that would end the test run itself
        assert signal.getsignal(sig) not in (signal.SIG_DFL, signal.default_int_handler)
        signal.raise_signal(sig)
        async with asyncio.timeout(5 * UNIT):
            await stop.wait()
        stopped.append(stop.is_set())

    service.main("gateway", ServiceSettings, runner)
    assert stopped == [True]


def test_a_bad_setting_exits_2_before_anything_runs(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        environment: list[tuple[str, str]]) -> None:
    monkeypatch.setenv("SB_PORT", "not-a-port")
    ran: list[object] = []

    async def runner(settings: ServiceSettings, stop: asyncio.Event) -> None:
        ran.append(settings)

    with pytest.raises(SystemExit) as exited:
        service.main("presence", ServiceSettings, runner)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("presence: configuration error: ") and "SB_PORT" in err
    assert ran == [] and environment == []


def test_a_configuration_error_the_runner_finds_exits_2(
        capsys: pytest.CaptureFixture[str]) -> None:
    async def runner(settings: ServiceSettings, stop: asyncio.Event) -> None:
        raise ConfigError("SB_TLS_CERT: no such file")

    with pytest.raises(SystemExit) as exited:
        service.main("gateway", ServiceSettings, runner)
    assert exited.value.code == 2
    assert capsys.readouterr().err == "gateway: configuration error: SB_TLS_CERT: no such file\n"


def test_other_runner_errors_are_not_swallowed() -> None:
    async def runner(settings: ServiceSettings, stop: asyncio.Event) -> None:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError, match="bug"):
        service.main("gateway", ServiceSettings, runner)
