"""Sids that name their gateway: random enough, URL-safe, and never a crash on a foreign one."""

from __future__ import annotations

import re

import pytest

from shared.sids import new_sid, owner_of


@pytest.mark.parametrize("owner", ["gw-1", "host-4242", "pod.with dots/and:colons", "ü"])
def test_the_owner_comes_back(owner: str) -> None:
    sid = new_sid(owner)
    assert owner_of(sid) == owner
    assert re.fullmatch(r"[A-Za-z0-9_~=-]+", sid)


def test_at_least_128_random_bits() -> None:
    sids = {new_sid("gw").split("~")[0] for _ in range(1000)}
    assert len(sids) == 1000 and all(len(s) >= 22 for s in sids)


@pytest.mark.parametrize("sid", ["", "~", "abc~gw", "x" * 22 + "~", "x" * 22 + "~=ZZ",
                                 "GneGqMuPmmDvxHssAAAA", "x" * 22 + "~a=2"])
def test_foreign_or_malformed_sids_have_no_owner(sid: str) -> None:
    assert owner_of(sid) is None
