"""Compose smoke test: the real docker-compose.yml, built and run where no registry is reachable.

Run by hand (it takes minutes and needs root for dockerd and debootstrap), from the repository
root after ``scripts/test`` or ``npm ci --prefix tests/js`` has installed socket.io-client::

    sudo .venv/bin/python deploy/smoke.py            # --help for the options

What it does, each step timed and reported at the end:

1. finds the Docker CLI and Compose (``docker compose`` or ``docker-compose``); as root on
   Debian it installs ``docker.io``, ``docker-compose`` and ``debootstrap`` with apt if missing;
2. uses the running Docker engine, or starts ``dockerd`` itself (and stops that one, by PID,
   at the end); when the engine cannot start it prints why (its log) and exits 2;
3. builds a local base image without any registry: ``debootstrap`` (Debian bookworm with
   python3, haproxy and prometheus) piped into ``docker import`` — cached across runs;
4. fills ``deploy/wheelhouse`` with wheels built on the host (``pip wheel``), so the image
   build installs offline, then builds the Switchboard image and the stand-ins for the NATS,
   load-balancer and Prometheus images (``deploy/offline/*.Dockerfile``);
5. ``compose up --scale gateway=3`` with those images, waits until Prometheus reports every
   replica ``up`` (3 gateways, router, presence, lb, itself) and every alert rule healthy;
6. runs a short fan-out load through the load balancer (deploy/loadtest/fanout.py; nothing
   may be lost or duplicated), then connects real socket.io-clients through the load balancer
   until they sit on all three gateways (the router's API, also behind the load balancer, says
   which), and checks that a message sent on one gateway and one published by the server API
   reach every other client;
7. scales the gateways down to 2 and checks that the clients of the removed gateway are drained
   (close 1012), reconnect through the load balancer and recover their session, and that
   Prometheus then sees two gateways;
8. tears everything down (``compose down -v``), whatever happened.

Exit status: 0 all checks passed, 1 a check failed, 2 the engine or a tool is unavailable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.jsclient import JsClients  # noqa: E402
from tests.support.tokens import make_token  # noqa: E402

PROJECT = "sbsmoke"
BASE_TAG = "switchboard-local/bookworm:smoke"
IMAGES = {
    "NATS_IMAGE": ("switchboard-local/nats:smoke", "nats.Dockerfile"),
    "LB_IMAGE": ("switchboard-local/haproxy:smoke", "haproxy.Dockerfile"),
    "PROMETHEUS_IMAGE": ("switchboard-local/prometheus:smoke", "prometheus.Dockerfile"),
}
SWITCHBOARD_TAG = "switchboard:smoke"
DEBIAN_PACKAGES = "python3,python3-venv,haproxy,prometheus"
WHEELHOUSE = ROOT / "deploy" / "wheelhouse"
GATEWAYS = 3


class Unavailable(RuntimeError):
    """The engine or a tool cannot be had here; the message says why (exit 2)."""


class CheckFailed(AssertionError):
    """The stack came up but did not behave (exit 1)."""


@dataclass
class Timings:
    steps: list[tuple[str, float]] = field(default_factory=list)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        say(f"--- {name}")
        started = time.monotonic()
        try:
            yield
        finally:
            self.steps.append((name, time.monotonic() - started))
            say(f"    {name}: {self.steps[-1][1]:.1f}s")

    def report(self) -> str:
        width = max((len(name) for name, _ in self.steps), default=0)
        lines = [f"  {name:<{width}}  {seconds:7.1f}s" for name, seconds in self.steps]
        total = sum(seconds for _, seconds in self.steps)
        return "\n".join([*lines, f"  {'total':<{width}}  {total:7.1f}s"])


def say(message: str) -> None:
    print(f"smoke: {message}", file=sys.stderr, flush=True)


def run(argv: list[str], *, env: dict[str, str] | None = None, check: bool = True,
        quiet: bool = False, stdin: Any = None, timeout: float = 1800) -> str:
    """Run a command; its output is returned (and echoed unless ``quiet``)."""
    say("$ " + " ".join(argv))
    proc = subprocess.run(argv, env=env, stdin=stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False,
                          cwd=ROOT)
    if not quiet and proc.stdout.strip():
        print(proc.stdout.rstrip(), file=sys.stderr)
    if check and proc.returncode != 0:
        if quiet:
            print(proc.stdout.rstrip()[-4000:], file=sys.stderr)
        raise CheckFailed(f"{argv[0]} exited with {proc.returncode}")
    return proc.stdout


# -- tools and engine ------------------------------------------------------------------------


def ensure_tools(install: bool) -> list[str]:
    """The compose command; installs Debian's packages as root when something is missing."""
    missing = [tool for tool in ("docker", "dockerd", "debootstrap") if not shutil.which(tool)]
    compose = compose_command()
    if (missing or compose is None) and install:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise Unavailable(f"missing {missing or ['docker compose']}; install Docker, Compose "
                              "and debootstrap (Debian: apt-get install docker.io docker-compose "
                              "debootstrap) or run this as root")
        run(["apt-get", "update", "-q"], quiet=True)
        run(["apt-get", "install", "-y", "-q", "docker.io", "docker-compose", "debootstrap"],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, quiet=True)
        missing = [tool for tool in ("docker", "dockerd", "debootstrap") if not shutil.which(tool)]
        compose = compose_command()
    if missing or compose is None:
        raise Unavailable(f"missing {missing or ['docker compose']} (rerun without --no-install "
                          "as root to install them)")
    return compose


def compose_command() -> list[str] | None:
    """``docker compose`` (v2) when the plugin exists, else ``docker-compose`` (v1)."""
    if shutil.which("docker") and subprocess.run(
            ["docker", "compose", "version"], capture_output=True, check=False).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def engine_up() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


@dataclass
class Dockerd:
    """A ``dockerd`` this script started (and so stops); ``None`` fields when one was running."""

    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def start(self, workdir: Path) -> None:
        if engine_up():
            say("using the running Docker engine")
            return
        if os.geteuid() != 0:
            raise Unavailable("no Docker engine is running and only root can start dockerd")
        self.log_path = workdir / "dockerd.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(["dockerd", "--pidfile", str(workdir / "dockerd.pid")],
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        say(f"started dockerd pid={self.proc.pid} (log {self.log_path})")
        deadline = time.monotonic() + 60
        while not engine_up():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace").splitlines()[-25:]
                self.stop()
                raise Unavailable("dockerd could not start on this machine; its log ends:\n  "
                                  + "\n  ".join(tail) + "\n(typical causes: no cgroup "
                                  "filesystem, no overlay/iptables support in the kernel, or "
                                  "running inside an unprivileged container)")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        say(f"stopping dockerd pid={self.proc.pid}")
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- images ------------------------------------------------------------------------------------


def image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True,
                          check=False).returncode == 0


def build_base(workdir: Path, rebuild: bool) -> None:
    """Debian bookworm from debootstrap, imported as an image; no registry involved."""
    if image_exists(BASE_TAG) and not rebuild:
        say(f"{BASE_TAG} exists (cached; --rebuild-base to redo)")
        return
    if os.geteuid() != 0:
        raise Unavailable("debootstrap needs root")
    rootfs = workdir / "rootfs"
    run(["debootstrap", "--variant=minbase", f"--include={DEBIAN_PACKAGES}", "bookworm",
         str(rootfs)], quiet=True)
    for cached in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        cached.unlink()
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    try:
        run(["docker", "import", "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:"
             "/usr/sbin:/usr/bin:/sbin:/bin", "-", BASE_TAG], stdin=tar.stdout, quiet=True)
    finally:
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait()
    shutil.rmtree(rootfs, ignore_errors=True)


def fill_wheelhouse() -> list[Path]:
    """Wheels for the image build, made on the host; returns what was added (to remove)."""
    before = set(WHEELHOUSE.iterdir())
    pip = [sys.executable, "-m", "pip"]
    run([*pip, "wheel", "--quiet", "--wheel-dir", str(WHEELHOUSE), str(ROOT)], quiet=True)
    run([*pip, "download", "--quiet", "--dest", str(WHEELHOUSE), "setuptools>=68", "wheel"],
        quiet=True)
    return sorted(set(WHEELHOUSE.iterdir()) - before)


def find_nats_server() -> Path:
    from devcluster.natsserver import find_nats_server as locate

    return Path(locate())


def build_images(workdir: Path, compose: list[str], env: dict[str, str]) -> None:
    for tag, dockerfile in IMAGES.values():
        context = workdir / f"ctx-{dockerfile}"
        context.mkdir()
        if dockerfile == "nats.Dockerfile":
            shutil.copy2(find_nats_server(), context / "nats-server")
        run(["docker", "build", "--quiet", "-f", str(ROOT / "deploy/offline" / dockerfile),
             "--build-arg", f"BASE_IMAGE={BASE_TAG}", "-t", tag, str(context)], quiet=True)
    run([*compose, "-p", PROJECT, "build", "gateway"], env=env, quiet=True)


# -- the stack ---------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Free ports below the kernel's ephemeral range, so no outgoing connection takes one
    between this check and Docker publishing it."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randrange(20_000, 32_000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in chosen:
            chosen.append(port)
    return chosen


def get_json(url: str, headers: dict[str, str] | None = None,
             body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={
        **(headers or {}), **({"Content-Type": "application/json"} if data else {})})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.load(answer)


def wait_for(what: str, probe: Any, timeout: float) -> Any:
    """Poll ``probe()`` until it returns something truthy; raise with ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
        except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(1)
    raise CheckFailed(f"{what} not reached within {timeout:g}s (last: {last!r})")


def prometheus_up(prom: str) -> dict[str, list[float]]:
    """job -> the ``up`` values of its targets."""
    result = get_json(f"{prom}/api/v1/query?query=up")["data"]["result"]
    jobs: dict[str, list[float]] = {}
    for sample in result:
        jobs.setdefault(sample["metric"]["job"], []).append(float(sample["value"][1]))
    return jobs


def all_up(prom: str, gateways: int) -> dict[str, list[float]]:
    """Every expected target up, or ValueError saying what Prometheus sees instead."""
    jobs = prometheus_up(prom)
    expected = {"gateway": gateways, "router": 1, "presence": 1, "lb": 1, "prometheus": 1}
    for job, count in expected.items():
        values = jobs.get(job, [])
        if len(values) != count or not all(value == 1 for value in values):
            raise ValueError(f"want {expected} targets up, Prometheus has up={jobs}")
    return jobs


def rules_healthy(prom: str) -> list[str]:
    """The names of the loaded rules once each has been evaluated without error."""
    groups = get_json(f"{prom}/api/v1/rules")["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    unhealthy = [(rule["name"], rule.get("health"), rule.get("lastError")) for rule in rules
                 if rule.get("health") != "ok"]
    if not rules or unhealthy:
        raise ValueError(f"rules not all healthy: {unhealthy or 'none loaded'}")
    return [rule["name"] for rule in rules]


async def check_clients(lb: str, api_key: str, secret: str, prom: str,
                        compose: list[str], env: dict[str, str]) -> list[str]:
    """Cross-gateway delivery through the load balancer, then a drain on scale-down."""
    verified: list[str] = []
    headers = {"Authorization": f"Bearer {api_key}"}
    js = await JsClients.start()
    try:
        placed: dict[str, str] = {}  # client -> gateway instance id
        for n in range(4 * GATEWAYS):
            name = f"smoke{n}"
            hello = await js.connect(name, lb, "/chat", make_token(name, secret=secret),
                                     reconnection=True, reconnectionDelay=200,
                                     reconnectionDelayMax=1000)
            if hello["type"] != "connect":
                raise CheckFailed(f"{name} could not connect through the lb: {hello}")
            connections = await asyncio.to_thread(
                get_json, f"{lb}/api/v1/users/{name}/connections", headers)
            placed[name] = connections["connections"][0]["gateway"]
            if len(set(placed.values())) == GATEWAYS:
                break
        gateways = set(placed.values())
        if len(gateways) != GATEWAYS:
            raise CheckFailed(f"clients reached {len(gateways)} gateways, not {GATEWAYS}: "
                              f"{placed}")
        verified.append(f"{len(placed)} socket.io-clients through the lb landed on "
                        f"{GATEWAYS} different gateways ({', '.join(sorted(gateways))})")
        one_each = {gateway: name for name, gateway in placed.items()}
        clients = sorted(one_each.values())
        for name in clients:
            ack = await js.call(name, "room:join", {"room": "room:smoke"}, within=10)
            if not ack.get("ok"):
                raise CheckFailed(f"{name} could not join: {ack}")
        sender, *readers = clients
        ack = await js.call(sender, "message:send",
                            {"room": "room:smoke", "text": "across gateways", "id": "smoke-1"},
                            within=10)
        if not ack.get("ok"):
            raise CheckFailed(f"send failed: {ack}")
        for reader in readers:
            (message, *_) = await js.expect_event(reader, "message:received", within=10)
            if message["text"] != "across gateways" or message["from"] != sender:
                raise CheckFailed(f"{reader} got {message}")
        verified.append(f"a message sent on {placed[sender]} reached the clients on the "
                        "other two gateways (seq " + str(ack["seq"]) + ")")
        published = await asyncio.to_thread(
            get_json, f"{lb}/api/v1/publish", headers,
            {"namespace": "/chat", "room": "room:smoke", "event": "smoke:notice",
             "data": {"text": "from the server API"}})
        if not published.get("ok"):
            raise CheckFailed(f"server API publish failed: {published}")
        for name in clients:
            (event, *_) = await js.expect_event(name, "smoke:notice", within=10)
            if event.get("text") != "from the server API":
                raise CheckFailed(f"{name} got {event} instead of the API publish")
        verified.append("a server-API publish through the lb reached all three gateways' clients")

        # Scale down: compose stops one gateway (SIGTERM); its clients must move and recover.
        await asyncio.to_thread(run, [*compose, "-p", PROJECT, "up", "-d", "--no-build",
                                      "--scale", f"gateway={GATEWAYS - 1}"], env=env, quiet=True)
        remaining = await asyncio.to_thread(
            wait_for, f"Prometheus sees {GATEWAYS - 1} gateways",
            lambda: all_up(prom, GATEWAYS - 1), 60)
        moved = []
        for name, gateway in placed.items():
            now = await asyncio.to_thread(
                get_json, f"{lb}/api/v1/users/{name}/connections", headers)
            if now["connections"] and now["connections"][0]["gateway"] != gateway:
                moved.append(name)
        if not moved:
            raise CheckFailed("no client changed gateway after scaling down")
        for name in moved:
            reports = js.pending(name)
            reasons = [r.get("reason") for r in reports if r["type"] == "disconnect"]
            reconnects = [r for r in reports if r["type"] == "connect"]
            if not reconnects:
                reconnects = [await js.expect(name, {"connect"}, within=20)]
            if not reconnects[-1].get("recovered"):
                raise CheckFailed(f"{name} reconnected without recovering: {reports}")
            if reasons and reasons[0] != "transport close":
                raise CheckFailed(f"{name} was disconnected by {reasons}, not a drain close")
        verified.append(
            f"scaled to {GATEWAYS - 1} gateways: {len(moved)} client(s) of the stopped one were "
            f"drained, reconnected through the lb and recovered their session; Prometheus "
            f"saw {len(remaining['gateway'])} gateways up")
    finally:
        await js.stop()
    return verified


def load_step(lb: str, secret: str) -> list[str]:
    """A short fan-out load (deploy/loadtest/fanout.py) through the lb: nothing lost."""
    if not (ROOT / "bench" / "loadgen" / "node_modules").is_dir():
        say("skipping the load step: run `npm ci --prefix bench/loadgen` to include it")
        return []
    rooms, members, rate = 6, 20, 300
    output = run([sys.executable, str(ROOT / "deploy" / "loadtest" / "fanout.py"), "--url",
                  lb.replace("http://", "ws://"), "--rooms", str(rooms), "--members",
                  str(members), "--rates", str(rate), "--duration", "5", "--max-seconds", "120",
                  "--json"], env={**os.environ, "SB_JWT_SECRET": secret}, quiet=True)
    (result,) = json.loads(output[output.index("["):output.rindex("]") + 1])
    if result.get("event") != "step_result" or result["lost"] or result["dup"]:
        raise CheckFailed(f"load step lost or duplicated messages: {result}")
    latency = result["latency_ms"]
    return [f"load through the lb: {rooms * (members + 1)} sockets, {rate} publishes/s for 5 s "
            f"-> {result['delivered_per_s']:.0f} deliveries/s, p50 {latency['p50']} ms, "
            f"p99 {latency['p99']} ms, 0 lost, 0 duplicated"]


STOP_ORDER = ("lb", "gateway", "router", "presence", "prometheus", "nats-1", "nats-2", "nats-3")
STOP_TIMEOUT_S = 30


def stop_in_order(compose: list[str], env: dict[str, str]) -> list[str]:
    """Stop service by service, timed: a service that needs its whole timeout ignored SIGTERM
    (or drained for too long), which `down` alone would hide."""
    times = []
    for service in STOP_ORDER:
        started = time.monotonic()
        run([*compose, "-p", PROJECT, "stop", "-t", str(STOP_TIMEOUT_S), service], env=env,
            check=False, quiet=True)
        seconds = time.monotonic() - started
        times.append(f"{service} {seconds:.1f}s")
        if seconds >= STOP_TIMEOUT_S:
            say(f"WARNING: {service} did not stop on SIGTERM within {STOP_TIMEOUT_S}s")
    return ["stop times (SIGTERM to exit, gateways drain): " + ", ".join(times)]


def main() -> int:
    parser = argparse.ArgumentParser(prog="deploy/smoke.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-install", action="store_true",
                        help="never apt-get install missing tools")
    parser.add_argument("--rebuild-base", action="store_true",
                        help="redo the debootstrap base image even if it is cached")
    parser.add_argument("--keep-images", action="store_true",
                        help="keep the Switchboard and stand-in images (the base is always kept)")
    args = parser.parse_args()

    timings = Timings()
    dockerd = Dockerd()
    workdir = Path(tempfile.mkdtemp(prefix="sb-smoke-"))
    compose: list[str] = []
    env: dict[str, str] = {}
    added_wheels: list[Path] = []
    verified: list[str] = []
    code = 0
    try:
        with timings.step("tools"):
            compose = ensure_tools(install=not args.no_install)
        with timings.step("engine"):
            dockerd.start(workdir)
        with timings.step("base image (debootstrap + docker import)"):
            build_base(workdir, args.rebuild_base)
        with timings.step("wheels on the host"):
            added_wheels = fill_wheelhouse()
        secret, api_key = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        lb_port, prom_port, nats_port = free_ports(3)
        env = {**os.environ, "BASE_IMAGE": BASE_TAG, "SWITCHBOARD_IMAGE": SWITCHBOARD_TAG,
               **{var: tag for var, (tag, _) in IMAGES.items()},
               "LB_PORT": str(lb_port), "PROMETHEUS_PORT": str(prom_port),
               "NATS_PORT": str(nats_port), "SB_JWT_SECRET": secret, "SB_API_KEY": api_key}
        with timings.step("images (switchboard + stand-ins)"):
            build_images(workdir, compose, env)
        lb, prom = f"http://127.0.0.1:{lb_port}", f"http://127.0.0.1:{prom_port}"
        with timings.step(f"compose up --scale gateway={GATEWAYS}"):
            run([*compose, "-p", PROJECT, "up", "-d", "--no-build", "--scale",
                 f"gateway={GATEWAYS}"], env=env, quiet=True)
        with timings.step("every replica up in Prometheus"):
            jobs = wait_for("every target up", lambda: all_up(prom, GATEWAYS), 120)
            names = wait_for("every alert rule evaluated", lambda: rules_healthy(prom), 60)
            verified.append("Prometheus (DNS service discovery) reports up=1 for "
                            + ", ".join(f"{len(v)} {k}" for k, v in sorted(jobs.items())))
            verified.append(f"all {len(names)} alert rules loaded and evaluated with health ok")
        with timings.step("load through the load balancer"):
            verified += load_step(lb, secret)
        with timings.step("clients through the load balancer"):
            verified += asyncio.run(check_clients(lb, api_key, secret, prom, compose, env))
    except Unavailable as exc:
        say(f"UNAVAILABLE: {exc}")
        code = 2
    except (CheckFailed, TimeoutError, subprocess.TimeoutExpired) as exc:
        say(f"FAILED: {exc!r}")
        if compose:
            run([*compose, "-p", PROJECT, "ps"], env=env, check=False)
            run([*compose, "-p", PROJECT, "logs", "--tail", "40"], env=env, check=False)
        code = 1
    finally:
        with timings.step("teardown"):
            if compose and env and engine_up():
                verified += stop_in_order(compose, env)
            if compose and engine_up():
                run([*compose, "-p", PROJECT, "down", "-v", "--remove-orphans", "--timeout",
                     "30"], env=env or dict(os.environ), check=False, quiet=True)
                if not args.keep_images:
                    tags = [SWITCHBOARD_TAG, *(tag for tag, _ in IMAGES.values())]
                    run(["docker", "image", "rm", "--force", *tags], check=False, quiet=True)
            for wheel in added_wheels:
                wheel.unlink(missing_ok=True)
            dockerd.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    print("\nsmoke: timings\n" + timings.report(), file=sys.stderr)
    if verified:
        print("smoke: verified\n" + "\n".join(f"  - {line}" for line in verified),
              file=sys.stderr)
    print(f"smoke: {'PASSED' if code == 0 else 'FAILED' if code == 1 else 'UNAVAILABLE'}",
          file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
