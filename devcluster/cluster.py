"""Start, watch and stop the whole local cluster.

Order matters both ways: NATS first (every service needs it), then router, presence and the
gateways together, then the balancer and the demo page; on the way down gateways first (they
drain and clean up their registry entries while router, presence and NATS still run), then
the others, NATS last. The one line on stdout, ``READY {...}``, is printed only when every
child answered ``/readyz`` with 200, so scripts and tests can wait on it.

Once ready, a child that dies is logged and restarted under its name while the rest keep
serving (clients behind the balancer recover on another gateway meanwhile); only NATS dying
stops the cluster, since every service's state lives there. A second Ctrl-C stops at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
import sys
import time
from collections.abc import Mapping

import aiohttp
from aiohttp import web

from devcluster import apps, demo
from devcluster.balancer import Balancer
from devcluster.child import Child, ChildFailed
from devcluster.layout import (
    HOST,
    Layout,
    LayoutError,
    Options,
    Secrets,
    child_env,
    is_development,
    plan,
    resolve_secrets,
    shared_env,
)
from devcluster.natsserver import NatsServer, NatsServerError, free_ports
from devcluster.restarts import RestartPolicy

log = logging.getLogger("devcluster")

_NATS_WATCH_S = 0.5


class StartupError(RuntimeError):
    """The cluster could not come up; the message says which part and why."""


async def run(options: Options, environ: Mapping[str, str],
              cluster: Cluster | None = None) -> int:
    """Run until SIGINT/SIGTERM (exit 0) or a failure (exit 1); always stop everything.
    ``cluster`` is a :class:`Cluster` (subclass) built for ``options``, if not the plain one."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    cluster = cluster or Cluster(options, environ)

    def on_signal() -> None:
        if stop.is_set():
            log.warning("second stop signal: killing everything now")
            cluster.kill()
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    try:
        return await cluster.run(stop)
    except (StartupError, ChildFailed, NatsServerError, LayoutError) as exc:
        log.error("%s", exc)
        return 1
    finally:
        await cluster.shutdown()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


class Cluster:
    """The running pieces; :meth:`shutdown` is safe after a start that failed half-way."""

    def __init__(self, options: Options, environ: Mapping[str, str]) -> None:
        self._options = options
        self._environ = environ
        self._nats = NatsServer(monitoring=True, server_name="sb-dev", die_with_parent=True)
        self._children: list[Child] = []
        self._demo: web.AppRunner | None = None
        self._balancer: Balancer | None = None

    async def run(self, stop: asyncio.Event) -> int:
        """Start everything, announce READY, then supervise until stopped or broken."""
        layout = apps.with_apps(plan(self._options, *free_ports(2)), self._options)
        _check_free(layout)
        keys = resolve_secrets(self._environ)
        _announce_generated(keys)
        await self._start_nats()
        if stop.is_set():
            return 0
        env = shared_env(self._environ, self._nats.url, keys)
        await self._start_children(layout, env)
        await self._start_balancer(layout)
        await self._start_demo(layout, keys)
        if not await self._wait_ready(stop):
            return 0
        if self._balancer is not None:
            await self._balancer.check_all()
        _print_ready(layout, self._nats.url)
        return await self._supervise(stop)

    async def shutdown(self) -> None:
        """Stop the demo page, the balancer's accepting, the gateways (their drains still
        reach clients through the balancer), the balancer, router and presence, and NATS."""
        if self._demo is not None:
            await self._demo.cleanup()
        if self._balancer is not None:
            self._balancer.stop_accepting()
        grace = self._options.stop_timeout
        gateways = [c for c in self._children if c.spec.module == "gateway"]
        others = [c for c in self._children if c.spec.module != "gateway"]
        await asyncio.gather(*(child.stop(grace) for child in gateways))
        if self._balancer is not None:
            await self._balancer.stop()
        await asyncio.gather(*(child.stop(grace) for child in others))
        pid = self._nats.pid if self._nats.is_running() else None
        await asyncio.to_thread(self._nats.stop)  # also removes its directory
        if pid is not None:
            log.info("stopped nats pid=%d", pid)

    def kill(self) -> None:
        """SIGKILL every child and NATS now; :meth:`shutdown` then only reaps them."""
        for child in self._children:
            child.kill()
        if self._nats.is_running():
            self._nats.kill()

    # -- start -----------------------------------------------------------------------------

    async def _start_nats(self) -> None:
        await asyncio.to_thread(self._nats.start)
        log.info("started nats pid=%d url=%s monitoring=%s",
                 self._nats.pid, self._nats.url, self._nats.monitor_url)

    async def _start_children(self, layout: Layout, env: Mapping[str, str]) -> None:
        for spec in layout.children:
            child = Child(spec, child_env(env, spec))
            self._children.append(child)
            await child.start()

    async def _start_balancer(self, layout: Layout) -> None:
        balancer = Balancer(HOST, layout.lb_port, [(HOST, g.port) for g in layout.gateways])
        try:
            await balancer.start()
        except OSError as exc:
            raise StartupError(f"the balancer cannot listen on {layout.lb_url}: {exc}") from exc
        self._balancer = balancer
        log.info("balancer at %s over %d gateways (round-robin, no stickiness)",
                 layout.lb_url, len(layout.gateways))

    async def _start_demo(self, layout: Layout, keys: Secrets) -> None:
        config = demo.DemoConfig(
            gateways=tuple(gateway.url for gateway in layout.gateways),
            jwt_secret=keys.jwt_secret,
            development=is_development(self._environ),
            pages=apps.pages(self._options),
            lb=layout.lb_url,
            gateway_pids=self._gateway_pids,
            router=layout.router.url,
            api_key=keys.api_key,
        )
        missing = demo.missing_packages(config.web_dir)
        if missing is not None:
            log.warning("%s", missing)
        try:
            self._demo = await demo.serve(config, HOST, layout.demo_port)
        except OSError as exc:
            raise StartupError(f"demo page cannot listen on {layout.demo_url}: {exc}") from exc
        log.info("demo page at %s (web files from %s)", layout.demo_url, config.web_dir)

    def _gateway_pids(self) -> dict[str, int]:
        """Running gateways by name (the demo page's "kill my gateway" in development)."""
        return {child.spec.name: child.pid for child in self._children
                if child.spec.module == "gateway" and child.returncode is None}

    async def _wait_ready(self, stop: asyncio.Event) -> bool:
        """All children ready (True), or stopped first (False); the first failure raises."""
        timeout = aiohttp.ClientTimeout(total=1.0)
        within = self._options.ready_timeout
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                async with asyncio.TaskGroup() as group:
                    waits = [group.create_task(c.wait_ready(session, stop, within))
                             for c in self._children]
            except ExceptionGroup as failures:
                raise _first(failures) from None
        return all(wait.result() for wait in waits)

    # -- supervise -------------------------------------------------------------------------

    async def _supervise(self, stop: asyncio.Event) -> int:
        """Wait for a stop signal (0) or NATS exiting (1), restarting children that die."""
        stopped = asyncio.create_task(stop.wait())
        nats_exit = asyncio.create_task(self._watch_nats())
        keepers = [asyncio.create_task(self._keep_running(child)) for child in self._children]
        done, _ = await asyncio.wait({stopped, nats_exit}, return_when=asyncio.FIRST_COMPLETED)
        for task in (stopped, nats_exit, *keepers):
            task.cancel()
        await asyncio.gather(stopped, nats_exit, *keepers, return_exceptions=True)
        if stopped in done:
            log.info("stopping (signal received)")
            return 0
        log.error("nats-server exited unexpectedly with code %s:\n%s",
                  self._nats.returncode, self._nats.log_tail())
        log.error("stopping everything: every service's state lives in NATS")
        return 1

    async def _keep_running(self, child: Child) -> None:
        """Restart ``child`` under its name each time it dies, with the policy's delays."""
        policy = RestartPolicy()
        while True:
            await child.wait()
            log.error("%s", child.describe_exit())
            delay = policy.after_exit(time.monotonic() - child.started_at)
            log.warning("restarting %s in %gs (restart %d)", child.spec.name, delay,
                        policy.restarts)
            await asyncio.sleep(delay)
            await child.start()

    async def _watch_nats(self) -> None:
        """Return when nats-server exits; a Popen offers no awaitable exit, so it is polled."""
        while self._nats.is_running():  # noqa: ASYNC110
            await asyncio.sleep(_NATS_WATCH_S)


def _check_free(layout: Layout) -> None:
    """Fail before starting anything if a base-derived port is taken.

    Otherwise an old devcluster still holding port 8001 would answer our readiness poll and
    we would announce a cluster that is not ours.
    """
    for port in layout.fixed_ports:
        with socket.socket() as sock:
            # As servers do, so a TIME_WAIT left by an earlier run does not count as in use.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, port))
            except OSError as exc:
                raise StartupError(
                    f"port {port} on {HOST} is in use ({exc.strerror}); pick another "
                    f"--base-port (the balancer uses base, gateways base+1..base+N, the demo "
                    f"page base+100)"
                ) from None


def _announce_generated(keys: Secrets) -> None:
    values = {"SB_JWT_SECRET": keys.jwt_secret, "SB_API_KEY": keys.api_key}
    for name in keys.generated:
        log.warning("%s not set; generated a DEVELOPMENT key for this run: %s=%s",
                    name, name, values[name])


def _first(failures: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first real failure; a child that failed cancels the others' polls."""
    for exc in failures.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first(exc)
        return exc
    return failures


def _print_ready(layout: Layout, nats_url: str) -> None:
    announcement = {
        "lb": layout.lb_url,
        "gateways": [gateway.url for gateway in layout.gateways],
        "nats": nats_url,
        "router": layout.router.url,
        "presence": layout.presence.url,
        "demo": layout.demo_url,
    }
    sys.stdout.write("READY " + json.dumps(announcement, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    log.info("ready; Ctrl-C or SIGTERM stops everything")
