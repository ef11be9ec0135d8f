"""``--app MODULE [--app-replicas N]``: the application's workers as children of the cluster.

Each replica is ``python -m MODULE`` with the cluster's environment (``SB_NATS_URL``,
``SB_SUBJECT_PREFIX``, ...), its own ``SB_INSTANCE_ID`` (``app-1``, ``app-2``, ...) and a free
``SB_PORT`` where the worker SDK serves ``/readyz``, so devcluster waits for it, watches it and
stops it like any other child. The module's ``namespaces.toml`` (beside its ``__init__.py``)
becomes ``SB_NAMESPACES_FILE`` for every child unless that is set, and a page beside it
(``index.html``) is served by the demo server under ``/<package>/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path

from devcluster.layout import ChildSpec, Layout, LayoutError, Options
from devcluster.natsserver import free_ports

NAMESPACES_FILE = "namespaces.toml"
PAGE = "index.html"
MAX_REPLICAS = 16


@dataclasses.dataclass(frozen=True, slots=True)
class AppModule:
    """Where an application module lives: its directory and the root of its import path."""

    name: str
    directory: Path
    root: Path

    @property
    def namespaces_file(self) -> Path | None:
        path = self.directory / NAMESPACES_FILE
        return path if path.is_file() else None

    @property
    def page_prefix(self) -> str:
        """Where the demo server shows the module's page: ``/orderbook/`` for
        ``examples.orderbook``."""
        return f"/{self.directory.name}/"

    @property
    def page_dir(self) -> Path | None:
        return self.directory if (self.directory / PAGE).is_file() else None


def locate(module: str) -> AppModule:
    """Find ``module`` as ``python -m`` would from here; :class:`LayoutError` if it cannot."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        raise LayoutError(f"--app {module}: cannot be imported ({exc})") from None
    if spec is None or spec.origin is None:
        raise LayoutError(f"--app {module}: no such module on the Python path")
    origin = Path(spec.origin).resolve()
    directory = origin.parent
    depth = module.count(".") + (1 if origin.name == "__init__.py" else 0)
    return AppModule(module, directory, origin.parents[depth])


def check(options: Options) -> None:
    if not 1 <= options.app_replicas <= MAX_REPLICAS:
        raise LayoutError(f"--app-replicas must be between 1 and {MAX_REPLICAS}, "
                          f"got {options.app_replicas}")


def app_environ(environ: Mapping[str, str], app: AppModule) -> dict[str, str]:
    """The cluster's environment with the module's namespaces file (unless
    ``SB_NAMESPACES_FILE`` is set) and its import root on ``PYTHONPATH``, so the module is
    found from any working directory."""
    env = dict(environ)
    if app.namespaces_file is not None and not env.get("SB_NAMESPACES_FILE"):
        env["SB_NAMESPACES_FILE"] = str(app.namespaces_file)
    paths = [str(app.root), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return env


def app_specs(module: str, ports: list[int]) -> tuple[ChildSpec, ...]:
    return tuple(ChildSpec(name=f"app-{i}", module=module, port=port)
                 for i, port in enumerate(ports, start=1))


def with_apps(layout: Layout, options: Options) -> Layout:
    """``layout`` with the ``--app`` replicas (on free ports) among its children."""
    if options.app is None:
        return layout
    check(options)
    return dataclasses.replace(
        layout, apps=app_specs(options.app, free_ports(options.app_replicas)))


def pages(options: Options) -> dict[str, Path]:
    """URL prefix → directory of the application's page, for the demo server."""
    if options.app is None:
        return {}
    app = locate(options.app)
    return {} if app.page_dir is None else {app.page_prefix: app.page_dir}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Options()
    parser.add_argument("--app", metavar="MODULE", default=defaults.app,
                        help="also run `python -m MODULE` (an application worker, e.g. "
                        "examples.orderbook) with the cluster's SB_NATS_URL and "
                        "SB_SUBJECT_PREFIX; its namespaces.toml becomes SB_NAMESPACES_FILE "
                        "for every child unless set, its index.html is served by the demo "
                        "server under /<package>/")
    parser.add_argument("--app-replicas", type=int, default=defaults.app_replicas,
                        metavar="N", help=f"replicas of --app, 1-{MAX_REPLICAS} "
                        "(default %(default)s)")


def environ_for(options: Options, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment every child gets: ``environ``, plus the ``--app`` module's
    namespaces file and import root when there is one."""
    if options.app is None:
        return dict(environ)
    check(options)
    return app_environ(environ, locate(options.app))
