"""docs/openapi.yaml describes what the router serves: every route, the limits, the codes."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from router.answers import STATUS_CODES
from router.api import Api
from router.http_api import add_routes
from router.requests import DATA_MAX_BYTES, REASON_MAX
from shared.namespaces import BUILT_IN
from shared.protocol.events import RESERVED
from shared.ratelimit import TokenBucket
from tests.unit.test_router_operations import Fakes

OPENAPI = (Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml").read_text()


def test_every_route_is_documented_with_its_method() -> None:
    fakes = Fakes()
    app = web.Application()
    add_routes(app, Api(fakes.operations(), TokenBucket.full(1, 1, 0)), "key", lambda: 0.0)
    routes = {(r.method.lower(), r.resource.canonical) for r in app.router.routes()
              if r.resource is not None and r.method != "HEAD"}
    assert len(routes) == 6
    for method, path in routes:
        at = OPENAPI.index(f"  {path}:\n")
        assert f"    {method}:\n" in OPENAPI[at:], (method, path)


def test_limits_names_and_codes_match_the_code() -> None:
    assert f"{DATA_MAX_BYTES:,}" in OPENAPI
    assert f"maxLength: {REASON_MAX}" in OPENAPI
    for namespace in BUILT_IN:
        assert namespace in OPENAPI
    for event in RESERVED:
        assert event in OPENAPI
    for code in set(STATUS_CODES.values()):
        assert code in OPENAPI
