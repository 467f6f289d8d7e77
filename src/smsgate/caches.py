"""The one cache for what requests bring in: bounded (least recently used first) and, per entry, expiring.

Every per-key cache or counter fed by what clients send (api_keys, tokens, numbers, signatures) uses it: a flood
of new keys then costs the oldest entries one by one, never the whole table (which would also wipe the counts of
an attack). Storage is ``cachetools.LRUCache``; an entry's expiry is kept beside its value and checked on read,
because ``cachetools.TTLCache`` costs ~1.4 µs a read against ~0.2 µs here, and logins and tokens are read on every
send (docs/decisions.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

import cachetools

K = TypeVar("K")
V = TypeVar("V")


class Expiring(Generic[K, V]):
    """At most ``size`` entries, each until its own deadline (``clock`` seconds)."""

    def __init__(self, size: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._data: cachetools.LRUCache[K, tuple[V, float]] = cachetools.LRUCache(maxsize=size)
        self._clock = clock

    def get(self, key: K) -> V | None:
        """The value while it lives (a read makes it the most recently used)."""
        hit = self._data.get(key)
        if hit is None:
            return None
        if hit[1] <= self._clock():
            self._data.pop(key, None)
            return None
        return hit[0]

    def put(self, key: K, value: V, ttl: float) -> None:
        self._data[key] = (value, self._clock() + ttl)

    def pop(self, key: K) -> None:
        self._data.pop(key, None)

    def drop(self, keep: Callable[[V], bool]) -> None:
        """Forget every entry whose value ``keep`` refuses."""
        for key in [k for k, (v, _until) in self._data.items() if not keep(v)]:
            self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
