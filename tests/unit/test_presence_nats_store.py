"""What the NATS store decides without a server: its key scheme reads back any names (and
nothing that is not its own), and the pause after a lost compare-and-set stays short. The
store's behaviour against a real nats-server is the contract suite
(``tests/integration/test_presence_store_contract.py``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from presence.nats_store import cas_backoff, parse_key
from shared.subjects import (
    presence_boot_key,
    presence_record_key,
    presence_replica_key,
    presence_typing_key,
)

NAMES = st.text(min_size=1, max_size=40)


def test_bucket_keys_round_trip_any_names() -> None:
    assert parse_key(presence_record_key("gw.1", "b/o", "s d")) == ("c", ("gw.1", "b/o", "s d"))
    assert parse_key(presence_typing_key("/chat room:a", "ü")) == ("t", ("/chat room:a", "ü"))
    assert parse_key(presence_boot_key("gw.1")) == ("g", ("gw.1",))
    assert parse_key(presence_replica_key("p 1")) == ("r", ("p 1",))


@given(NAMES, NAMES, NAMES)
def test_any_record_key_parses_back(gateway: str, boot: str, conn: str) -> None:
    assert parse_key(presence_record_key(gateway, boot, conn)) == ("c", (gateway, boot, conn))


@pytest.mark.parametrize("key", ["c.only.two", "x.y", "r.=ZZ", "r", "t.a.b.c", ""])
def test_keys_that_are_not_ours_parse_to_none(key: str) -> None:
    assert parse_key(key) is None


@pytest.mark.parametrize("attempt", [0, 1, 5, 19])
def test_the_cas_pause_is_jittered_below_a_bound_growing_with_attempts(attempt: int) -> None:
    pauses = [cas_backoff(attempt) for _ in range(200)]

    assert all(0.0 <= pause <= 0.002 * (attempt + 1) for pause in pauses)
    assert len(set(pauses)) > 1
