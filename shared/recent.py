"""A bounded map of what a process last wrote, for compare-and-set writers that skip the read.

The registry (a user's entry and its revision) and the presence store (a socket's record seq
and revision) both remember their own last write per key, so the next write of the same key
can expect that revision without reading it first; a conflict drops the key and costs one
read. Bounded, because keys come and go with users and sockets: the least recently written
is forgotten first, and a forgotten key only costs a read.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        """Remember ``value`` as the latest for ``key``, forgetting the oldest over the limit."""
        items = self._items
        items[key] = value
        items.move_to_end(key)
        if len(items) > self.limit:
            items.popitem(last=False)

    def forget(self, key: K) -> None:
        self._items.pop(key, None)
