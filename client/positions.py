"""Where the last delivered ``seq`` of each room is kept between runs.

Positions make de-duplication by ``(room, seq)`` hold across process restarts and give
``room:join`` its ``since`` after a reload. The client saves a position only after the app's
message callback returned, so a crash between the two replays that message rather than
losing it. Stores are small and synchronous: a position is a few bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Protocol


class PositionStore(Protocol):
    def load(self, namespace: str) -> dict[str, int]:
        """Every room's last delivered ``seq`` in ``namespace`` (empty when none)."""

    def save(self, namespace: str, room: str, seq: int) -> None:
        """Remember ``seq`` for the room; a lower ``seq`` than the stored one is ignored, so
        out-of-order saves can never move a position back."""


class MemoryPositionStore:
    """The default: positions live as long as the process."""

    def __init__(self) -> None:
        self._positions: dict[str, dict[str, int]] = {}

    def load(self, namespace: str) -> dict[str, int]:
        return dict(self._positions.get(namespace, {}))

    def save(self, namespace: str, room: str, seq: int) -> None:
        rooms = self._positions.setdefault(namespace, {})
        if seq > rooms.get(room, -1):
            rooms[room] = seq


class JsonFilePositionStore:
    """Positions in one JSON file ``{namespace: {room: seq}}``, rewritten atomically
    (temporary file + rename) so a crash mid-write leaves the previous version intact.

    One file per user and app instance: positions are the client's, not the server's.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._positions = self._read()

    def load(self, namespace: str) -> dict[str, int]:
        return dict(self._positions.get(namespace, {}))

    def save(self, namespace: str, room: str, seq: int) -> None:
        rooms = self._positions.setdefault(namespace, {})
        if seq <= rooms.get(room, -1):
            return
        rooms[room] = seq
        self._write()

    def _read(self) -> dict[str, dict[str, int]]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        if not isinstance(raw, dict):
            raise ValueError(f"{self.path}: not a positions file")
        positions: dict[str, dict[str, int]] = {}
        for namespace, rooms in raw.items():
            if not isinstance(rooms, dict):
                raise ValueError(f"{self.path}: bad entry for {namespace!r}")
            positions[str(namespace)] = {
                str(room): seq for room, seq in rooms.items()
                if isinstance(seq, int) and not isinstance(seq, bool)
            }
        return positions

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=self.path.name, suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(self._positions, out, separators=(",", ":"), sort_keys=True)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
