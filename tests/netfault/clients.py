"""Client processes started inside the namespace: the real socket.io-client
(``tests/js/remote.mjs``) and the Python SDK (:mod:`tests.netfault.sdk_peer`), both behind
:class:`~tests.support.jsclient.JsClients`. Stopping them (by their own PIDs) is the caller's
part, before the namespace is deleted."""

from __future__ import annotations

import asyncio
import shutil
import sys

from tests.netfault.netns import Namespace
from tests.support.jsclient import JS_DIR, JsClients
from tests.support.processes import ROOT

SDK_PEER = [sys.executable, "-m", "tests.netfault.sdk_peer"]


async def _start(argv: list[str], cwd: str) -> JsClients:
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, limit=16 * 1024 * 1024)
    return JsClients(proc)


async def node_inside(ns: Namespace) -> JsClients:
    node = shutil.which("node")
    assert node, "node is required for the socket.io-client clients"
    return await _start(ns.exec_argv(node, str(JS_DIR / "remote.mjs")), str(JS_DIR))


async def sdk_inside(ns: Namespace) -> JsClients:
    return await _start(ns.exec_argv(*SDK_PEER), str(ROOT))


async def sdk_here() -> JsClients:
    """The SDK peer on the host's own network (the peer's own test needs no namespace)."""
    return await _start(SDK_PEER, str(ROOT))
