"""A bounded in-memory map for values that never go stale (ended jobs and their wire form)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedMemo(Generic[K, V]):
    """The oldest entries go first once ``limit`` is reached; a key keeps its first value."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def put(self, key: K, value: V) -> V:
        if key not in self._items:
            if len(self._items) >= self.limit:
                self._items.popitem(last=False)
            self._items[key] = value
        return self._items[key]
