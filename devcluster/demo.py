"""The demo page's web server: the files under ``web/``, the gateway list and dev tokens.

Only the named files are served (never a directory listing or ``node_modules`` at large),
and ``socket.io.min.js`` is the unmodified build from npm, so the demo proves the gateways
work with the client users actually run. ``POST /dev-token`` exists so a person can log in
without an identity provider; it is refused outside ``SB_ENV=development``, as are
``/dev/gateways`` and ``POST /dev/kill-gateway``, the page's "kill my gateway" button (a
SIGKILL, as ``kill -9`` from a terminal, so a person can watch the page recover elsewhere), and
``/dev/where``, which asks the router's registry which gateway holds the page's connection.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import jwt
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
SOCKET_IO_BUILD = Path("node_modules/socket.io-client/dist/socket.io.min.js")
TOKEN_LIFETIME_S = 3600
NAME_MAX_CHARS = 128
"""Same bound as a JWT ``sub`` the gateways accept."""

_MODULES = ("app.js", "events.js", "connection_state.js", "dev_tools.js", "members.js",
            "room_log.js", "room_view.js", "rooms.js", "typing.js")
_PAGES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    **{f"/{name}": (name, "text/javascript; charset=utf-8") for name in _MODULES},
}


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """What the page needs to know; ``development`` gates ``/dev-token``."""

    gateways: tuple[str, ...]
    jwt_secret: str
    development: bool
    gateway_pids: Callable[[], Mapping[str, int]] | None = None
    """Development: the running gateways' pids by instance id (``/dev/gateways``)."""
    router: str | None = None
    """Development: the router's URL and API key for ``/dev/where``. The sid names the gateway
    that opened a session, but an upgrade through the balancer may move it to another."""
    api_key: str | None = None
    web_dir: Path = WEB_DIR
    pages: Mapping[str, Path] = field(default_factory=dict)
    """URL prefix (``/orderbook/``) → directory of an application's page (``--app``)."""
    lb: str | None = None
    """The balancer in front of the gateways: the URL the page connects to when there is one."""

    @property
    def socket_urls(self) -> tuple[str, ...]:
        """Every URL the page may open a socket to (the CSP's ``connect-src``)."""
        return ((self.lb,) if self.lb else ()) + self.gateways


def missing_packages(web_dir: Path) -> str | None:
    """The warning for a page without its npm packages (it would load but never connect)."""
    build = web_dir / SOCKET_IO_BUILD
    if build.is_file():
        return None
    return (f"the demo page will not work: {build} is missing; run `npm ci --prefix web` "
            "(scripts/run does)")


def issue_dev_token(name: str, secret: str, now: int) -> str:
    """An HS256 token the gateways accept for user ``name`` for one hour."""
    claims = {"sub": name, "name": name, "iat": now, "exp": now + TOKEN_LIFETIME_S}
    return jwt.encode(claims, secret, algorithm="HS256")


def parse_name(body: Any) -> str | None:
    """The requested user name if ``body`` is ``{"name": <1-128 chars, not blank>}``."""
    if not isinstance(body, dict):
        return None
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX_CHARS:
        return None
    return name


def content_security_policy(gateways: tuple[str, ...]) -> str:
    """Scripts from this origin only; sockets only to this origin and the cluster's gateways."""
    sockets = " ".join(
        f"{url} {url.replace('http://', 'ws://', 1)}" for url in gateways
    )
    return (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        f"connect-src 'self' {sockets}; img-src 'self' data:; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    )


def make_app(config: DemoConfig) -> web.Application:
    """The aiohttp application; separate from serving so tests can drive it in-process."""
    app = web.Application(client_max_size=4096, middlewares=[_headers(config)])
    for path, (filename, content_type) in _PAGES.items():
        app.router.add_get(path, _page(config.web_dir / filename, content_type))
    app.router.add_get("/socket.io.min.js", _socket_io(config.web_dir / SOCKET_IO_BUILD))
    app.router.add_get("/config.json", _config(config))
    for prefix, directory in config.pages.items():
        app.router.add_get(prefix, _page(directory / "index.html", _TYPES[".html"]))
        app.router.add_get(prefix + "{name}", _app_file(directory))
    app.router.add_post("/dev-token", _development_only(config, _dev_token(config)))
    app.router.add_get("/dev/gateways", _development_only(config, _dev_gateways(config)))
    app.router.add_post("/dev/kill-gateway", _development_only(config, _kill_gateway(config)))
    app.router.add_get("/dev/where", _development_only(config, _dev_where(config)))
    app.router.add_get("/healthz", _ok)
    app.router.add_get("/readyz", _ok)
    return app


async def serve(config: DemoConfig, host: str, port: int) -> web.AppRunner:
    """Serve on ``host:port`` until the returned runner's ``cleanup()``."""
    runner = web.AppRunner(make_app(config), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def _headers(config: DemoConfig) -> Middleware:
    policy = content_security_policy(config.socket_urls)

    @web.middleware
    async def add_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        response.headers.setdefault("Content-Security-Policy", policy)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"  # edits to web/ show on reload
        return response

    return add_headers


def _page(path: Path, content_type: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        if not await asyncio.to_thread(path.is_file):
            raise web.HTTPNotFound(text=f"{path.name} is missing from {path.parent}")
        return web.FileResponse(path, headers={"Content-Type": content_type})

    return handler


_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8"}
_APP_FILE = re.compile(r"[A-Za-z0-9_-]+\.(?:html|js|css)")


def _app_file(directory: Path) -> Handler:
    """An application page's own files: plain names of the page's types, nothing else."""
    async def handler(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if _APP_FILE.fullmatch(name) is None:
            raise web.HTTPNotFound()
        return await _page(directory / name, _TYPES[Path(name).suffix])(request)

    return handler


def _socket_io(path: Path) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        if not await asyncio.to_thread(path.is_file):
            return web.Response(
                status=500, content_type="text/plain",
                text=f"{path} is missing: run `npm ci --prefix web` to install socket.io-client",
            )
        return web.FileResponse(
            path, headers={"Content-Type": "text/javascript; charset=utf-8"}
        )

    return handler


def _config(config: DemoConfig) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"gateways": list(config.gateways), "lb": config.lb})

    return handler


def _development_only(config: DemoConfig, handler: Handler) -> Handler:
    """The development endpoints answer 404 outside ``SB_ENV=development``."""
    async def guarded(request: web.Request) -> web.StreamResponse:
        if not config.development:
            return _error(404, f"{request.path} exists only when SB_ENV=development")
        return await handler(request)

    return guarded


def _dev_token(config: DemoConfig) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return _error(400, 'expected a JSON body {"name": "..."}')
        name = parse_name(body)
        if name is None:
            return _error(400, f"name must be a non-blank string of 1-{NAME_MAX_CHARS} chars")
        now = int(time.time())
        return web.json_response({"token": issue_dev_token(name, config.jwt_secret, now)})

    return handler


def _running_gateways(config: DemoConfig) -> Mapping[str, int]:
    return config.gateway_pids() if config.gateway_pids is not None else {}


def _dev_gateways(config: DemoConfig) -> Handler:
    """The gateways' pids, for the page's hint (``kill -9 PID``) and its button."""
    async def handler(request: web.Request) -> web.StreamResponse:
        pids = sorted(_running_gateways(config).items())
        return web.json_response({"gateways": [{"id": id_, "pid": pid} for id_, pid in pids]})

    return handler


def _kill_gateway(config: DemoConfig) -> Handler:
    """SIGKILL one gateway. JSON only: another site's form cannot post one without a preflight."""
    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json() if request.content_type == "application/json" else None
        except (ValueError, UnicodeDecodeError):
            body = None
        gateway = body.get("gateway") if isinstance(body, dict) else None
        if not isinstance(gateway, str):
            return _error(400, 'expected Content-Type: application/json and {"gateway": "..."}')
        pid = _running_gateways(config).get(gateway)
        if pid is None:
            return _error(404, f"no running gateway {gateway!r} known to this demo server")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return _error(404, f"gateway {gateway!r} (pid {pid}) has already exited")
        return web.json_response({"gateway": gateway, "pid": pid})

    return handler


def _dev_where(config: DemoConfig) -> Handler:
    """``?user=&sid=`` → ``{"gateway": holder or null, "registry": whether it was asked}``."""
    async def handler(request: web.Request) -> web.StreamResponse:
        user, sid = request.query.get("user"), request.query.get("sid")
        if not user or not sid:
            return _error(400, "expected ?user=<name>&sid=<Engine.IO sid>")
        if config.router is None or config.api_key is None:
            return web.json_response({"gateway": None, "registry": False})
        connections = await _connections(config.router, config.api_key, user)
        holder = next((c.get("gateway") for c in connections if c.get("id") == sid), None)
        return web.json_response({"gateway": holder, "registry": True})

    return handler


async def _connections(router: str, api_key: str, user: str) -> list[dict[str, Any]]:
    """The user's connections in the router's registry; none when it cannot be asked."""
    url = f"{router}/api/v1/users/{quote(user, safe='')}/connections"
    headers = {"Authorization": f"Bearer {api_key}"}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session, \
                session.get(url, headers=headers) as response:
            body = await response.json() if response.status == 200 else {}
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return []
    found = body.get("connections") if isinstance(body, dict) else None
    return [c for c in found if isinstance(c, dict)] if isinstance(found, list) else []


async def _ok(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


def _error(status: int, message: str) -> web.Response:
    return web.Response(
        status=status, content_type="application/json",
        text=json.dumps({"error": {"code": "bad_request" if status == 400 else "not_found",
                                   "message": message}}),
    )

