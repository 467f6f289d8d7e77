"""A connector's queue of submit jobs in three lanes (high, normal, bulk), served by weight.

Smooth weighted round robin (nginx's): each take adds every non-empty lane's weight to its credit, serves the lane
with the most credit and takes the sum of those weights from it. With all lanes busy and weights 8:3:1, twelve takes
serve high 8 times, normal 3 times and bulk once, spread out rather than in runs, so a one-time code waits for at
most a few jobs ahead of it and a bulk backlog still moves. A lane that empties gets no credit meanwhile, so none
builds up a burst it could later spend; with one lane busy (the usual case: every message ``normal``) a take is a
plain ``popleft``.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Generic, TypeVar

T = TypeVar("T")
WEIGHTS = (8, 3, 1)  # high, normal, bulk


class Lanes(Generic[T]):
    """The part of ``asyncio.Queue`` the dispatcher uses, with a lane per put (0 most urgent)."""

    def __init__(self, weights: tuple[int, ...] = WEIGHTS) -> None:
        self._weights = weights
        self._lanes: tuple[collections.deque[T], ...] = tuple(collections.deque() for _ in weights)
        self._credit = [0] * len(weights)
        self._mixed = False  # credits are in use (several lanes were busy at once)
        self._size = 0
        self._ready = asyncio.Event()

    def put_nowait(self, item: T, lane: int = 1) -> None:
        self._lanes[lane].append(item)
        self._size += 1
        self._ready.set()

    def qsize(self) -> int:
        return self._size

    def empty(self) -> bool:
        return self._size == 0

    def sizes(self) -> tuple[int, ...]:
        return tuple(len(q) for q in self._lanes)

    def get_nowait(self) -> T:
        if self._size == 0:
            raise asyncio.QueueEmpty
        self._size -= 1
        busy = [i for i, q in enumerate(self._lanes) if q]
        if len(busy) == 1:
            if self._mixed:  # the mix is over: the next one starts from even credit
                self._credit = [0] * len(self._weights)
                self._mixed = False
            return self._lanes[busy[0]].popleft()
        self._mixed = True
        total, best = 0, busy[0]
        credit, weights = self._credit, self._weights
        for i in busy:
            credit[i] += weights[i]
            total += weights[i]
            if credit[i] > credit[best]:
                best = i
        credit[best] -= total
        return self._lanes[best].popleft()

    async def get(self) -> T:
        while self._size == 0:
            self._ready.clear()
            await self._ready.wait()
        return self.get_nowait()
