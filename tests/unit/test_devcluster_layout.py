"""devcluster's port rule and the environment each child gets, as plain function calls."""

from __future__ import annotations

import pytest

from devcluster.layout import (
    LayoutError,
    Options,
    Secrets,
    child_env,
    plan,
    resolve_secrets,
    shared_env,
)


def test_gateway_i_listens_on_base_plus_i_and_the_demo_on_base_plus_100() -> None:
    layout = plan(Options(gateways=3, base_port=9000), router_port=40001, presence_port=40002)
    assert [g.url for g in layout.gateways] == [
        "http://127.0.0.1:9001", "http://127.0.0.1:9002", "http://127.0.0.1:9003",
    ]
    assert [g.name for g in layout.gateways] == ["gw-1", "gw-2", "gw-3"]
    assert layout.demo_url == "http://127.0.0.1:9100"
    assert layout.router.url == "http://127.0.0.1:40001"
    assert [c.module for c in layout.children] == ["router", "presence", *["gateway"] * 3]
    assert layout.fixed_ports == (9000, 9001, 9002, 9003, 9100)
    assert layout.lb_url == "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    ("gateways", "base_port"), [(0, 8000), (100, 8000), (2, 0), (2, 65535 - 99)]
)
def test_impossible_layouts_are_refused_with_the_flag_named(gateways: int, base_port: int) -> None:
    with pytest.raises(LayoutError, match="--"):
        plan(Options(gateways=gateways, base_port=base_port), 1, 2)


def test_unset_keys_are_generated_and_reported() -> None:
    keys = resolve_secrets({"SB_API_KEY": "api"}, make_key=lambda: "generated")
    assert keys == Secrets(jwt_secret="generated", api_key="api", generated=("SB_JWT_SECRET",))


def test_production_never_runs_on_generated_keys() -> None:
    with pytest.raises(LayoutError, match="SB_JWT_SECRET and SB_API_KEY"):
        resolve_secrets({"SB_ENV": "production"})
    keys = resolve_secrets({"SB_ENV": "production", "SB_JWT_SECRET": "s", "SB_API_KEY": "k"})
    assert keys.generated == ()


def test_children_get_the_parent_environment_plus_the_cluster_settings() -> None:
    layout = plan(Options(gateways=1, base_port=8000), 1, 2)
    keys = Secrets("secret", "key", ())
    parent = {"PATH": "/bin", "SB_PORT": "1", "SB_CHAT_RATE": "5", "SB_HOST": "0.0.0.0"}
    env = child_env(shared_env(parent, "nats://127.0.0.1:4", keys), layout.gateways[0])
    assert env["PATH"] == "/bin"
    assert env["SB_CHAT_RATE"] == "5"
    assert env["SB_PORT"] == "8001"
    assert env["SB_HOST"] == "127.0.0.1"
    assert env["SB_INSTANCE_ID"] == "gw-1"
    assert env["SB_NATS_URL"] == "nats://127.0.0.1:4"
    assert (env["SB_JWT_SECRET"], env["SB_API_KEY"]) == ("secret", "key")
    assert env["SB_ENV"] == "development"
    assert shared_env({"SB_ENV": "production"}, "n", keys)["SB_ENV"] == "production"


def test_the_drain_window_is_short_locally_unless_set() -> None:
    keys = Secrets("secret", "key", ())
    assert shared_env({}, "n", keys)["SB_DRAIN_WINDOW_S"] == "2"
    assert shared_env({"SB_DRAIN_WINDOW_S": "7"}, "n", keys)["SB_DRAIN_WINDOW_S"] == "7"
