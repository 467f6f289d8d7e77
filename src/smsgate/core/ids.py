"""Message ids: time-ordered UUIDs (RFC 9562 version 7), made a batch at a time.

A random (version 4) id puts every new message at a random place in the ``messages`` primary key and in every
index keyed by message id (parts, events, outbox), so each insert touches another B-tree page; a time-ordered id
appends, and a 5,000-recipient batch writes a run of neighbouring keys (docs/decisions.md, "Batch accept").
They cost less to make, too: ``uuid.uuid4()`` builds a ``UUID`` object per id, here one random draw serves a
whole batch.

Layout: 48 bits of Unix milliseconds, the version (7), then 74 bits that start at a fresh random value for each
call and count up by one per id, so the ids of one call sort in the order they were made. Two calls (on one node or
several) collide only within the same millisecond and when their random starts lie within a batch's length of
each other: about 2^-61 for two 5,000-id calls.
"""

from __future__ import annotations

import secrets
import time

_COUNTER_BITS = 74
_RAND_A_BITS = 12  # of the counter, before the variant bits
_RAND_B_BITS = _COUNTER_BITS - _RAND_A_BITS
_VERSION = 0x7 << 76
_VARIANT = 0b10 << 62
_RAND_B_MASK = (1 << _RAND_B_BITS) - 1
_COUNTER_MASK = (1 << _COUNTER_BITS) - 1


def message_ids(n: int, now: float | None = None) -> list[str]:
    """``n`` new ids in canonical UUID text form (36 characters), ascending, stamped ``now`` (epoch seconds)."""
    ms = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    head = (ms << 80) | _VERSION | _VARIANT
    start = secrets.randbits(_COUNTER_BITS)
    out = []
    for i in range(n):
        c = (start + i) & _COUNTER_MASK
        h = f"{head | ((c >> _RAND_B_BITS) << 64) | (c & _RAND_B_MASK):032x}"
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out


def message_id(now: float | None = None) -> str:
    return message_ids(1, now)[0]


class PartIds:
    """Part ids (16 upper-case hex digits, the form upstream message ids and Vonage's ``message-id`` take) for one
    batch, or for all single sends of one process: consecutive 64-bit values from a random start, so parts made
    together land side by side in the ``parts`` primary key instead of at random places (a page of the index
    written per part). Two runs collide only if they overlap: for runs of a billion ids each, about 1 in 10^10."""

    def __init__(self) -> None:
        self._next = secrets.randbits(64)

    def take(self, n: int) -> list[str]:
        start, self._next = self._next, self._next + n
        return [f"{(start + i) & _PART_MASK:016X}" for i in range(n)]


_PART_MASK = (1 << 64) - 1
