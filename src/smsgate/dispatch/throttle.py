"""A connector's TPS cap held for the sum of all nodes: tokens from one shared bucket before each submit.

Each SMPP connector paces itself (``max_tps`` per process), which caps one node; with N nodes on one
upstream account the SMSC would see N times the cap. So when Redis is configured, the dispatcher first
reserves tokens from a bucket per connector that every node draws from, and waits out the reservation
before calling ``Connector.submit``. Reserving (going into debt) rather than polling means one Redis round
trip per chunk, and nodes are served in the order they asked.

The bucket holds ``burst_seconds`` of the rate, and batches are cut into chunks of that size, so in any
window of T seconds the upstream sees at most ``max_tps * T + burst`` submits from all nodes together.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TypeVar

from smsgate import limits

log = logging.getLogger(__name__)
T = TypeVar("T")


class SharedThrottle:
    def __init__(self, buckets: limits.RateLimiter, caps: Mapping[str, float], *, burst_seconds: float = 0.2) -> None:
        self._buckets = buckets
        self._rates = {
            name: limits.Rate("connector:" + name, tps, max(1.0, math.floor(tps * burst_seconds)))
            for name, tps in caps.items()
            if tps and tps > 0
        }

    def limits(self, connector: str) -> bool:
        return connector in self._rates

    def chunks(
        self, connector: str, items: Sequence[T], *, key: Callable[[T], object] | None = None
    ) -> Iterator[Sequence[T]]:
        """The batch cut into pieces of one bucket's worth (all of it for an unthrottled connector); with ``key``,
        a run of items with the same key stays in one piece even if that makes it larger (a message's parts)."""
        rate = self._rates.get(connector)
        size = max(1, len(items) if rate is None else int(rate.burst))
        start = 0
        while start < len(items):
            end = min(start + size, len(items))
            if key is not None:
                while end < len(items) and key(items[end]) == key(items[end - 1]):
                    end += 1
            yield items[start:end]
            start = end

    async def acquire(self, connector: str, n: int) -> None:
        """Wait until ``n`` submits fit under the connector's shared cap."""
        rate = self._rates.get(connector)
        if rate is None or n <= 0:
            return
        wait = await self._buckets.reserve(rate, n)
        if wait > 0:
            await asyncio.sleep(wait)


def caps_from_tables(tables: Sequence[Mapping[str, object]]) -> dict[str, float]:
    """``max_tps`` of each ``[[connectors]]`` table that sets one."""
    out: dict[str, float] = {}
    for table in tables:
        tps = table.get("max_tps")
        if isinstance(tps, int | float) and tps > 0:
            out[str(table.get("name", ""))] = float(tps)
    return out
