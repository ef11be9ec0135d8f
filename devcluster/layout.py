"""What devcluster runs where: ports, names and environments, decided before anything starts.

Kept free of I/O so the port rule and the environment each child gets are plain function
calls in tests. The rule (also in ``python -m devcluster --help``): the load balancer listens
on the base port, gateway *i* on base+i, the demo page on base+100, router, presence and NATS
on free ports.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

HOST = "127.0.0.1"
DEMO_OFFSET = 100
"""The demo page listens on base+100: a fixed, documented place a person can type."""
MAX_GATEWAYS = DEMO_OFFSET - 1
SECRET_VARIABLES = ("SB_JWT_SECRET", "SB_API_KEY")


class LayoutError(ValueError):
    """The requested layout cannot work (ports out of range, production without keys)."""


@dataclass(frozen=True, slots=True)
class Options:
    """Command-line choices; every field has the default ``python -m devcluster`` uses."""

    gateways: int = 2
    base_port: int = 8000
    ready_timeout: float = 30.0
    """Seconds every child has to answer ``/readyz`` with 200."""
    stop_timeout: float = 20.0
    """Seconds a child has after SIGTERM (gateways drain) before it gets SIGKILL."""
    app: str | None = None
    """``--app``: the application module run as ``python -m <app>`` (see devcluster.apps)."""
    app_replicas: int = 1


@dataclass(frozen=True, slots=True)
class ChildSpec:
    """One service process: ``python -m <module>`` serving HTTP on ``port``."""

    name: str
    module: str
    port: int

    @property
    def url(self) -> str:
        """Base HTTP URL (``/healthz``, ``/readyz``, ``/metrics`` and, for gateways, Socket.IO)."""
        return f"http://{HOST}:{self.port}"


@dataclass(frozen=True, slots=True)
class Layout:
    """Every child and the demo port, in start order."""

    router: ChildSpec
    presence: ChildSpec
    gateways: tuple[ChildSpec, ...]
    demo_port: int
    lb_port: int = 0
    """The balancer in front of the gateways (devcluster.balancer): the URL clients use."""
    apps: tuple[ChildSpec, ...] = ()
    """The ``--app`` replicas (devcluster.apps.with_apps)."""

    @property
    def children(self) -> tuple[ChildSpec, ...]:
        """All service processes; router and presence first so gateways find them up."""
        return (self.router, self.presence, *self.gateways, *self.apps)

    @property
    def demo_url(self) -> str:
        """Where the demo page is served."""
        return f"http://{HOST}:{self.demo_port}"

    @property
    def lb_url(self) -> str:
        """The one URL clients connect to; any gateway behind it serves any session."""
        return f"http://{HOST}:{self.lb_port}"

    @property
    def fixed_ports(self) -> tuple[int, ...]:
        """Ports derived from the base port, which must be free before anything starts."""
        return (self.lb_port, *(gateway.port for gateway in self.gateways), self.demo_port)


def plan(options: Options, router_port: int, presence_port: int) -> Layout:
    """Lay out the cluster; raises :class:`LayoutError` for impossible counts or ports."""
    if not 1 <= options.gateways <= MAX_GATEWAYS:
        raise LayoutError(
            f"--gateways must be between 1 and {MAX_GATEWAYS}, got {options.gateways}"
        )
    if not 1 <= options.base_port <= 65535 - DEMO_OFFSET:
        raise LayoutError(
            f"--base-port must be between 1 and {65535 - DEMO_OFFSET} (the demo page uses "
            f"base+{DEMO_OFFSET}), got {options.base_port}"
        )
    gateways = tuple(
        ChildSpec(name=f"gw-{i}", module="gateway", port=options.base_port + i)
        for i in range(1, options.gateways + 1)
    )
    return Layout(
        router=ChildSpec(name="router", module="router", port=router_port),
        presence=ChildSpec(name="presence", module="presence", port=presence_port),
        gateways=gateways,
        demo_port=options.base_port + DEMO_OFFSET,
        lb_port=options.base_port,
    )


@dataclass(frozen=True, slots=True)
class Secrets:
    """The keys every child shares; ``generated`` names those devcluster made up."""

    jwt_secret: str
    api_key: str
    generated: tuple[str, ...]


def resolve_secrets(
    environ: Mapping[str, str], make_key: Callable[[], str] = lambda: secrets.token_urlsafe(32)
) -> Secrets:
    """Take the keys from the environment, generating development keys for unset ones.

    Production never gets a generated key: a key nobody wrote down would lock every client
    out at the next restart, so that is refused instead.
    """
    values: dict[str, str] = {}
    generated: list[str] = []
    for name in SECRET_VARIABLES:
        values[name] = environ.get(name, "")
        if not values[name]:
            generated.append(name)
            values[name] = make_key()
    if generated and environ.get("SB_ENV", "development").strip().lower() == "production":
        raise LayoutError(f"SB_ENV=production needs {' and '.join(generated)} set explicitly")
    return Secrets(values["SB_JWT_SECRET"], values["SB_API_KEY"], tuple(generated))


def shared_env(environ: Mapping[str, str], nats_url: str, keys: Secrets) -> dict[str, str]:
    """The parent's environment plus what every child of this cluster must agree on."""
    env = dict(environ)
    env.setdefault("SB_ENV", "development")
    # A local drain need not outlast a supervisor's patience; production keeps its 10 s.
    env.setdefault("SB_DRAIN_WINDOW_S", "2")
    env.update(
        SB_NATS_URL=nats_url,
        SB_JWT_SECRET=keys.jwt_secret,
        SB_API_KEY=keys.api_key,
        SB_HOST=HOST,
        PYTHONUNBUFFERED="1",  # logs reach the prefixed stream as they happen
    )
    return env


def child_env(shared: Mapping[str, str], spec: ChildSpec) -> dict[str, str]:
    """One child's environment: its port and its instance id on top of ``shared``."""
    return {**shared, "SB_PORT": str(spec.port), "SB_INSTANCE_ID": spec.name}


def is_development(environ: Mapping[str, str]) -> bool:
    """``SB_ENV`` unset counts as development, as in every service's settings."""
    return environ.get("SB_ENV", "development").strip().lower() == "development"
