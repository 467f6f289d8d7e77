"""Quotas and rate limits, in one place, so each dialect only translates the refusal.

In-process counters serve one node. The quota count is seeded from the store the first time an account is
seen in a window, so a restart does not hand out a fresh quota.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable

from smsgate import errors
from smsgate.core import accounts as core_accounts


@dataclasses.dataclass(frozen=True, slots=True)
class QuotaState:
    """What the KPN ``quota-*`` headers report."""

    limit: int | None
    used: int
    interval: int
    unit: str
    reset_at: float


@dataclasses.dataclass(slots=True)
class _Window:
    start: float
    end: float
    used: int


class Quotas:
    def __init__(self, count_since: Callable[[str, float], Awaitable[int]]) -> None:
        self._count_since = count_since
        self._windows: dict[str, _Window] = {}

    async def _window(self, account: core_accounts.Account, now: float) -> _Window:
        w = core_accounts.quota_window(now, account.quota_interval, account.quota_unit)
        cur = self._windows.get(account.id)
        if cur is None or cur.start != w.start:
            used = await self._count_since(account.id, w.start) if account.quota_limit is not None else 0
            cur = _Window(w.start, w.end, used)
            self._windows[account.id] = cur
        return cur

    async def state(self, account: core_accounts.Account) -> QuotaState:
        w = await self._window(account, time.time())
        return QuotaState(account.quota_limit, w.used, account.quota_interval, account.quota_unit, w.end)

    async def take(self, account: core_accounts.Account) -> QuotaState:
        """Reserve one send, or raise QuotaExceeded with the seconds until the window resets."""
        now = time.time()
        w = await self._window(account, now)
        if account.quota_limit is not None and w.used >= account.quota_limit:
            raise errors.QuotaExceeded(
                f"Rate limit quota violation. Quota limit exceeded. Identifier : {account.api_key}",
                retry_after=max(1.0, w.end - now),
            )
        w.used += 1
        return QuotaState(account.quota_limit, w.used, account.quota_interval, account.quota_unit, w.end)

    def give_back(self, account: core_accounts.Account) -> None:
        """Undo a reservation whose send was not accepted."""
        w = self._windows.get(account.id)
        if w is not None and w.used > 0:
            w.used -= 1


class TokenBuckets:
    """Throughput limits (messages per second with a burst), keyed by whatever the caller limits."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill)

    def take(self, key: str, rate: float, burst: float | None = None) -> None:
        cap = burst if burst is not None else max(1.0, rate)
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (cap, now))
        tokens = min(cap, tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            raise errors.RateLimited(retry_after=(1.0 - tokens) / rate)
        self._buckets[key] = (tokens - 1.0, now)
