"""The registry's compare-and-set loop over a fake bucket: how many round trips admission and
release take, that guesses and stale reads only cost retries, and that the per-user limit stays
exact when gateways race. The real bucket is exercised in tests/integration/test_user_limit.py.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
import pytest
from nats.js.errors import NotFoundError

from shared.registry import Admitted, ConnectionInfo, Refused, UserEntry
from shared.registry_kv import RegistryKV
from shared.request_mux import Reply

BUCKET = "sb-registry"
DIRECT = f"$JS.API.DIRECT.GET.KV_{BUCKET}.$KV.{BUCKET}."
WRITE = f"$KV.{BUCKET}."


@dataclass
class FakeBucket:
    """One KV bucket as JetStream answers raw requests: direct gets and compare-and-set PUBs.
    ``stale`` makes direct gets answer an older copy (a lagging replica)."""

    values: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    seq: int = 0
    requests: list[str] = field(default_factory=list)
    stale: dict[str, tuple[bytes, int]] | None = None
    interleave: bool = False

    async def request(self, subject: str, payload: bytes, headers: bytes | None) -> Reply:
        if self.interleave:
            for _ in range(random.randrange(3)):
                await asyncio.sleep(0)
        if subject.startswith(DIRECT):
            self.requests.append("read")
            found = (self.stale if self.stale is not None else self.values).get(
                subject[len(DIRECT):])
            if found is None:
                return Reply(b"", b"NATS/1.0 404 Message Not Found\r\n\r\n")
            return Reply(found[0], b"NATS/1.0\r\nNats-Sequence: %d\r\n\r\n" % found[1])
        assert subject.startswith(WRITE) and headers is not None
        self.requests.append("write")
        key = subject[len(WRITE):]
        expected = int(headers.split(b"Nats-Expected-Last-Subject-Sequence: ")[1].split(b"\r")[0])
        if self.values.get(key, (b"", 0))[1] != expected:
            return Reply(orjson.dumps({"error": {"code": 400, "err_code": 10071,
                                                 "description": "wrong last sequence"}}), None)
        self.seq += 1
        self.values[key] = (payload, self.seq)
        return Reply(orjson.dumps({"stream": f"KV_{BUCKET}", "seq": self.seq}), None)

    async def get_msg(self, stream: str, subject: str, direct: bool) -> Any:
        """The leader's copy, as nats-py's ``get_msg`` returns it."""
        assert not direct
        self.requests.append("leader read")
        found = self.values.get(subject[len(WRITE):])
        if found is None:
            raise NotFoundError
        return _Msg(found[1], found[0])


@dataclass
class _Msg:
    seq: int
    data: bytes
    headers: dict[str, str] | None = None


def registry(bucket: FakeBucket, live: dict[str, str] | None = None) -> RegistryKV:
    kv = RegistryKV(cast(Any, None), cast(Any, None), 3.0, cast(Any, bucket), BUCKET,
                    bucket.request)
    kv.live = live if live is not None else {"gw-1": "", "gw-2": ""}
    return kv


def info(gateway: str = "gw-1") -> ConnectionInfo:
    return ConnectionInfo(gateway, ("/chat",), 1.0)


async def test_a_new_users_admission_and_release_take_one_round_trip_each() -> None:
    bucket = FakeBucket()
    kv = registry(bucket)

    assert isinstance(await kv.admit("alice", "c1", info(), 5), Admitted)
    assert bucket.requests == ["write"]  # a create, no read first
    await kv.release("alice", "c1")

    assert bucket.requests == ["write", "write"]  # at the revision the create returned
    assert UserEntry.decode(bucket.values["u.alice"][0]).connections == {}


async def test_a_guess_that_lost_only_costs_a_read_and_a_retry() -> None:
    bucket = FakeBucket()
    elsewhere, here = registry(bucket), registry(bucket)
    await elsewhere.admit("alice", "c1", info("gw-2"), 5)
    bucket.requests.clear()

    assert isinstance(await here.admit("alice", "c2", info(), 5), Admitted)

    assert bucket.requests == ["write", "read", "write"]
    assert set(UserEntry.decode(bucket.values["u.alice"][0]).connections) == {"c1", "c2"}
    await elsewhere.release("alice", "c1")  # its remembered revision is stale now
    assert set(UserEntry.decode(bucket.values["u.alice"][0]).connections) == {"c2"}


async def test_a_stale_copy_never_turns_a_client_away() -> None:
    bucket = FakeBucket()
    kv = registry(bucket)
    for n in range(5):
        await kv.admit("alice", f"c{n}", info(), 5)
    bucket.stale = dict(bucket.values)  # a replica that has not seen the release yet
    await registry(bucket).release("alice", "c0")
    bucket.requests.clear()

    assert isinstance(await registry(bucket).admit("alice", "c9", info(), 5), Admitted)
    assert "leader read" in bucket.requests


async def test_a_refusal_rests_on_the_leaders_copy() -> None:
    bucket = FakeBucket()
    kv = registry(bucket)
    for n in range(5):
        await kv.admit("alice", f"c{n}", info(), 5)
    bucket.requests.clear()

    assert await kv.admit("alice", "c9", info(), 5) == Refused(5)
    assert bucket.requests == ["leader read"]


@pytest.mark.parametrize("seed", range(5))
async def test_racing_gateways_admit_exactly_the_limit(seed: int) -> None:
    random.seed(seed)
    bucket = FakeBucket(interleave=True)
    gateways = [registry(bucket), registry(bucket)]

    verdicts = await asyncio.gather(*(
        gateways[n % 2].admit("alice", f"c{n}", info(f"gw-{n % 2 + 1}"), 5)
        for n in range(20)))

    assert sum(isinstance(v, Admitted) for v in verdicts) == 5
    assert len(UserEntry.decode(bucket.values["u.alice"][0]).connections) == 5
