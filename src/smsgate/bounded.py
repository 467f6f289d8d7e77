"""A dict that holds at most a fixed number of entries, forgetting the least recently used one at a time.

Every per-key cache or counter fed by what clients send (api_keys, tokens, numbers) uses it: a flood of new keys
then costs the oldest entries one by one, never the whole table (which would also wipe the counts of an attack).
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Bounded(Generic[K, V]):
    """At most ``size`` entries; ``get`` and ``put`` make an entry the most recently used."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._data: collections.OrderedDict[K, V] = collections.OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        if len(self._data) > self._size:
            self._data.popitem(last=False)

    def pop(self, key: K) -> None:
        self._data.pop(key, None)

    def drop(self, keep: Callable[[V], bool]) -> None:
        """Forget every entry whose value ``keep`` refuses."""
        for key in [k for k, v in self._data.items() if not keep(v)]:
            del self._data[key]

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
