"""The one backoff: exponential, capped, jittered.

Used for a submit job put back in the outbox (``dispatch``), a webhook retry (``webhooks.sender``), a request an
HTTP upstream did not take (``connectors.http``) and an outcome the store refused (``store.committer``); they
differ only in base, cap and how much randomness spreads many retries out.
"""

from __future__ import annotations

import random

SPREAD = (0.8, 1.2)  # ±20 %: retries of many messages that failed together do not come back together
EQUAL = (0.5, 1.0)  # "equal jitter": half fixed, half random (AWS architecture blog), for webhooks
NONE = (1.0, 1.0)


def delay(attempt: int, *, base: float, cap: float, jitter: tuple[float, float] = SPREAD) -> float:
    """Seconds before try ``attempt + 1`` (``attempt`` 0 is the first retry): ``base · 2^attempt`` capped at
    ``cap``, times a random factor within ``jitter``."""
    d = min(cap, base * 2.0 ** min(max(attempt, 0), 60))
    return d * random.uniform(*jitter)
