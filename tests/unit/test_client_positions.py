"""Position stores: per namespace and room, never moving back, and (the JSON file) surviving
a restart of the process so de-duplication by (room, seq) holds across it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from client.positions import JsonFilePositionStore, MemoryPositionStore, PositionStore


@pytest.fixture(params=["memory", "json"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> PositionStore:
    if request.param == "memory":
        return MemoryPositionStore()
    return JsonFilePositionStore(tmp_path / "positions.json")


def test_positions_are_per_namespace_and_room(store: PositionStore) -> None:
    store.save("/chat", "room:a", 10)
    store.save("/chat", "room:b", 12)
    store.save("/notifications", "user:u", 3)

    assert store.load("/chat") == {"room:a": 10, "room:b": 12}
    assert store.load("/notifications") == {"user:u": 3}
    assert store.load("/live-updates") == {}


def test_a_position_never_moves_back(store: PositionStore) -> None:
    store.save("/chat", "room:a", 10)
    store.save("/chat", "room:a", 7)

    assert store.load("/chat") == {"room:a": 10}


def test_load_returns_a_copy(store: PositionStore) -> None:
    store.save("/chat", "room:a", 10)
    store.load("/chat")["room:a"] = 99

    assert store.load("/chat") == {"room:a": 10}


def test_the_json_file_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "positions.json"
    JsonFilePositionStore(path).save("/chat", "room:a", 41)

    reloaded = JsonFilePositionStore(path)

    assert reloaded.load("/chat") == {"room:a": 41}
    assert json.loads(path.read_text()) == {"/chat": {"room:a": 41}}
    assert [p.name for p in path.parent.iterdir()] == ["positions.json"]  # no temp files


def test_a_corrupt_file_is_an_error_not_a_silent_reset(tmp_path: Path) -> None:
    path = tmp_path / "positions.json"
    path.write_text("[1, 2]")

    with pytest.raises(ValueError):
        JsonFilePositionStore(path)
