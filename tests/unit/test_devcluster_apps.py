"""``--app``: the module is found as ``python -m`` finds it, its namespaces file and import
root reach every child's environment (an explicit SB_NAMESPACES_FILE wins), its replicas are
children with ports of their own, and its page is offered to the demo server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devcluster import apps
from devcluster.__main__ import parse_args
from devcluster.layout import LayoutError, Options, plan

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_module_is_located_with_its_files() -> None:
    app = apps.locate("examples.orderbook")
    assert app.directory == ROOT / "examples" / "orderbook" and app.root == ROOT
    assert app.namespaces_file == app.directory / "namespaces.toml"
    assert app.page_prefix == "/orderbook/" and app.page_dir == app.directory
    assert apps.locate("examples.orderbook.worker").root == ROOT


def test_an_unknown_module_is_a_layout_error() -> None:
    with pytest.raises(LayoutError, match="no-such"):
        apps.locate("no-such.module")


def test_every_child_gets_the_namespaces_file_unless_one_is_set() -> None:
    app = apps.locate("examples.orderbook")
    env = apps.app_environ({"PYTHONPATH": "/x"}, app)
    assert env["SB_NAMESPACES_FILE"] == str(app.namespaces_file)
    assert env["PYTHONPATH"] == os.pathsep.join([str(ROOT), "/x"])
    assert apps.app_environ({"SB_NAMESPACES_FILE": "/mine.toml"}, app)[
        "SB_NAMESPACES_FILE"] == "/mine.toml"
    assert apps.environ_for(Options(), {"A": "1"}) == {"A": "1"}


def test_replicas_are_children_on_their_own_ports() -> None:
    options = Options(app="examples.orderbook", app_replicas=3)
    layout = apps.with_apps(plan(options, 1, 2), options)
    assert [spec.name for spec in layout.apps] == ["app-1", "app-2", "app-3"]
    assert {spec.module for spec in layout.apps} == {"examples.orderbook"}
    assert len({spec.port for spec in layout.apps}) == 3
    assert layout.children[-3:] == layout.apps
    assert apps.with_apps(plan(Options(), 1, 2), Options()).apps == ()
    with pytest.raises(LayoutError):
        apps.with_apps(plan(options, 1, 2), Options(app="x", app_replicas=0))


def test_the_command_line_and_the_page() -> None:
    options, _ = parse_args(["--app", "examples.orderbook", "--app-replicas", "2"])
    assert (options.app, options.app_replicas) == ("examples.orderbook", 2)
    assert apps.pages(options) == {"/orderbook/": ROOT / "examples" / "orderbook"}
    assert parse_args([])[0].app is None and apps.pages(Options()) == {}
