"""Quotas and rate limits, in one place, so each dialect only translates the refusal.

Two twins with one (async) interface: in-process counters for a single node, and Redis (atomic Lua scripts)
when several nodes share the limits (``SMSGATE_REDIS_URL``); ``runtime`` picks one. The quota count is
seeded from the store the first time a window is seen, so a restart (or a flushed Redis) does not hand out
a fresh quota.

    Quotas        per account, over the account's interval (what the KPN ``quota-*`` headers report), in parts
    TokenBuckets  throughput: per account, per sender, per destination (at accept, in parts), per connector
                  (``dispatch.throttle``, before submit) and per client at the token endpoint; the bucket size
                  is the burst allowance
    Failures      failed logins per (client address, api_key), in a sliding window (``api.auth``)
    SeenOnce      keys remembered for a while: a signed Vonage request's (api_key, sig), so it cannot be replayed
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import cachetools

from smsgate import caches, errors
from smsgate.core import accounts as core_accounts
from smsgate.core import rates

CountSince = Callable[[str, float], Awaitable[int]]


@dataclasses.dataclass(frozen=True, slots=True)
class QuotaState:
    """What the KPN ``quota-*`` headers report."""

    limit: int | None
    used: int
    interval: int
    unit: str
    reset_at: float


@dataclasses.dataclass(frozen=True, slots=True)
class Rate:
    """One throughput limit: ``rate`` tokens per second from a bucket of ``burst`` tokens."""

    key: str
    rate: float
    burst: float

    @classmethod
    def of(cls, key: str, rate: float, burst: float | None = None) -> Rate:
        return cls(key, rate, burst if burst is not None else max(1.0, rate))


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    """Operator-wide throughput limits at accept time (the account's own TPS is on the account)."""

    sender_tps: float | None = None
    destination_tps: float | None = None
    burst_seconds: float = 1.0  # a bucket holds this many seconds of its rate (at least one token)

    def burst(self, rate: float) -> float:
        return max(1.0, rate * self.burst_seconds)

    def rates(self, account: core_accounts.Account, sender: str, destination: str) -> list[Rate]:
        out = []
        if account.rate_limit_tps:
            out.append(Rate("acct:" + account.id, account.rate_limit_tps, self.burst(account.rate_limit_tps)))
        if self.sender_tps:
            out.append(Rate("sender:" + sender, self.sender_tps, self.burst(self.sender_tps)))
        if self.destination_tps:
            out.append(Rate("dest:" + destination, self.destination_tps, self.burst(self.destination_tps)))
        return out


class QuotaLimiter(Protocol):
    async def state(self, account: core_accounts.Account) -> QuotaState: ...
    async def take(self, account: core_accounts.Account, n: int = 1) -> QuotaState: ...
    async def give_back(self, account: core_accounts.Account, n: int = 1) -> None: ...


class RateLimiter(Protocol):
    async def take_all(self, rates: Sequence[Rate], n: int = 1) -> None: ...
    async def reserve(self, rate: Rate, n: int) -> float: ...


def _exceeded(account: core_accounts.Account, retry_after: float) -> errors.QuotaExceeded:
    return errors.QuotaExceeded(
        f"Rate limit quota violation. Quota limit exceeded. Identifier : {account.api_key}",
        retry_after=max(1.0, retry_after),
    )


# -- in-process ------------------------------------------------------------------------------------------------
@dataclasses.dataclass(slots=True)
class _Window:
    start: float
    end: float
    used: int


class Quotas:
    def __init__(self, count_since: CountSince) -> None:
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

    async def take(self, account: core_accounts.Account, n: int = 1) -> QuotaState:
        """Reserve ``n`` parts (all or none), or raise QuotaExceeded with the seconds until the window resets."""
        now = time.time()
        w = await self._window(account, now)
        if account.quota_limit is not None and w.used + n > account.quota_limit:
            raise _exceeded(account, w.end - now)
        w.used += n
        return QuotaState(account.quota_limit, w.used, account.quota_interval, account.quota_unit, w.end)

    async def give_back(self, account: core_accounts.Account, n: int = 1) -> None:
        """Undo a reservation whose send was not accepted."""
        w = self._windows.get(account.id)
        if w is not None:
            w.used = max(0, w.used - n)


class TokenBuckets:
    """Throughput limits (messages per second with a burst), keyed by whatever the caller limits; at most ``size``
    buckets (the least recently used is forgotten: it refills to full, which a limit's own traffic never notices)."""

    def __init__(self, *, size: int = 100_000) -> None:
        self._buckets: cachetools.LRUCache[str, rates.Bucket] = cachetools.LRUCache(maxsize=size)

    def _bucket(self, r: Rate, now: float) -> rates.Bucket:
        b = self._buckets.get(r.key)
        if b is None:
            b = self._buckets[r.key] = rates.Bucket(r.rate, r.burst, now)
        else:
            b.rate, b.burst = r.rate, r.burst  # the account's TPS may have changed
        return b

    async def take(self, key: str, rate: float, burst: float | None = None) -> None:
        await self.take_all([Rate.of(key, rate, burst)])

    async def take_all(self, limits: Sequence[Rate], n: int = 1) -> None:
        """``n`` tokens (the parts of one message) from every bucket, or none at all and RateLimited with the
        longest wait. A bucket must hold ``n`` tokens, or be full when ``n`` is more than it can ever hold; the
        rest is taken as debt, so a long message is paid for by the wait before the next one."""
        now = time.monotonic()
        buckets = [self._bucket(r, now) for r in limits]
        wait = max((b.wait_for(n, now) for b in buckets), default=0.0)
        if wait > 0:
            raise errors.RateLimited(retry_after=wait)
        for b in buckets:
            b.spend(n, now)

    async def reserve(self, rate: Rate, n: int) -> float:
        """Take ``n`` tokens now, going into debt; returns the seconds to wait before using them."""
        now = time.monotonic()
        return self._bucket(rate, now).spend(n, now)


class Failures:
    """Failed logins per key (``address|api_key``) in a sliding window: ``blocked`` says how long a key must wait
    once it had ``limit`` failures within ``window`` seconds. At most ``size`` keys are kept (``Bounded``)."""

    def __init__(self, limit: int, window: float, *, size: int = 100_000) -> None:
        self.limit, self.window = limit, window
        self._fails: caches.Expiring[str, collections.deque[float]] = caches.Expiring(size)

    def _recent(self, key: str, now: float) -> collections.deque[float] | None:
        times = self._fails.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            self._fails.pop(key)
            return None
        return times

    async def blocked(self, key: str) -> float:
        now = time.monotonic()
        times = self._recent(key, now)
        if times is None or len(times) < self.limit:
            return 0.0
        return max(0.001, times[-self.limit] + self.window - now)

    async def failed(self, key: str) -> None:
        now = time.monotonic()
        times = self._recent(key, now) or collections.deque(maxlen=self.limit)
        times.append(now)
        self._fails.put(key, times, self.window)


class SeenOnce:
    """Keys remembered for their own time to live; ``first`` is True only the first time a live key is offered.
    At most ``size`` keys (the least recently offered forgotten first)."""

    def __init__(self, *, size: int = 200_000) -> None:
        self._seen: caches.Expiring[str, bool] = caches.Expiring(size)

    async def first(self, key: str, ttl: float) -> bool:
        if self._seen.get(key):
            return False
        self._seen.put(key, True, ttl)
        return True


# -- Redis -------------------------------------------------------------------------------------------------------
# KEYS: window counters, one per call of a batch. ARGV: five per key, in order: limit (-1 none), seed (-1:
# unknown), ttl ms, op (take|state|give), n parts. Returns {status, used} per key, flat: status 1 taken/ok,
# 0 refused, -1 the counter is missing and no seed was given. Each key's call is decided after the ones before it.
_QUOTA_BATCH = 256  # calls per script run at most (five arguments each)
_QUOTA_LUA = """
local out = {}
for i, key in ipairs(KEYS) do
  local a = 5 * (i - 1)
  local limit, seed, op, n = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), ARGV[a + 4], tonumber(ARGV[a + 5])
  local status, used = -1, 0
  local v = redis.call('GET', key)
  if not v and seed >= 0 then
    redis.call('SET', key, seed, 'PX', ARGV[a + 3], 'NX')
    v = redis.call('GET', key)
  end
  if v then
    v = tonumber(v)
    status, used = 1, v
    if op == 'give' then
      used = math.max(0, v - n)
      redis.call('SET', key, used, 'KEEPTTL')
    elseif op == 'take' then
      if limit >= 0 and v + n > limit then status = 0 else used = redis.call('INCRBY', key, n) end
    end
  end
  out[#out + 1] = status
  out[#out + 1] = used
end
return out
"""

# KEYS: buckets. ARGV: n, then rate and burst per key; mode 'all' (all-or-nothing, n each) or 'debt' (KEYS[1]
# only, may go negative). Server time, so every node refills by the same clock. Floats go back as strings.
_BUCKET_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local n = tonumber(ARGV[1])
local mode = ARGV[2]
local levels = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[1 + 2 * i])
  local burst = tonumber(ARGV[2 + 2 * i])
  local b = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(b[1]) or burst
  local ts = tonumber(b[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
  levels[i] = tokens
  local need = math.min(n, burst)  -- a message longer than the bucket passes when the bucket is full
  if mode == 'all' and tokens < need then wait = math.max(wait, (need - tokens) / rate) end
end
if mode == 'all' and wait > 0 then return {0, tostring(wait)} end
for i, key in ipairs(KEYS) do
  local rate = tonumber(ARGV[1 + 2 * i])
  local burst = tonumber(ARGV[2 + 2 * i])
  local left = levels[i] - n
  if left < 0 then wait = math.max(wait, -left / rate) end
  redis.call('HSET', key, 'tokens', tostring(left), 'ts', tostring(now))
  redis.call('PEXPIRE', key, math.ceil((burst - left) / rate * 1000) + 1000)
end
return {1, tostring(wait)}
"""


class RedisQuotas:
    """The quota counters in Redis: one key per account and window, counted atomically by every node."""

    def __init__(self, client: Any, count_since: CountSince, *, prefix: str = "smsgate:") -> None:
        self._client = client
        self._count_since = count_since
        self._prefix = prefix
        self._script = client.register_script(_QUOTA_LUA)
        # the calls waiting for the next script call (key, five arguments, the caller's future), and the task
        # sending them: one script call carries every call queued meanwhile, so under load a send pays a share of
        # one Redis round trip instead of one of its own (a script call per send was ~17 % of a PostgreSQL
        # node's GIL time). Each call is still decided on its own, in order, inside one atomic script run.
        self._queued: list[tuple[str, list[Any], asyncio.Future[tuple[int, int]]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def _call(self, account: core_accounts.Account, op: str, now: float, n: int = 1) -> tuple[int, int, float]:
        w = core_accounts.quota_window(now, account.quota_interval, account.quota_unit)
        key = f"{self._prefix}quota:{account.id}:{int(w.start)}"
        ttl_ms = max(1000, math.ceil((w.end - now) * 1000) + 60_000)
        limit = -1 if account.quota_limit is None else account.quota_limit
        status, used = await self._queue(key, [limit, -1, ttl_ms, op, n])
        if status == -1:  # first sight of this window (or Redis lost it): seed from the store
            seed = await self._count_since(account.id, w.start) if account.quota_limit is not None else 0
            status, used = await self._queue(key, [limit, seed, ttl_ms, op, n])
        return status, used, w.end

    def _queue(self, key: str, args: list[Any]) -> asyncio.Future[tuple[int, int]]:
        fut: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        self._queued.append((key, args, fut))
        if self._sender is None:
            self._sender = asyncio.create_task(self._send(), name="redis-quotas")
        return fut

    async def _send(self) -> None:
        """Send what is queued, one script call at a time, until nothing is. A caller that gave up (its request
        was cancelled) before its call was sent is left out, so it takes nothing."""
        try:
            while self._queued:
                calls = [c for c in self._queued[:_QUOTA_BATCH] if not c[2].done()]
                del self._queued[:_QUOTA_BATCH]
                if not calls:
                    continue
                try:
                    flat = await _redis(self._script(keys=[c[0] for c in calls], args=[a for c in calls for a in c[1]]))
                except Exception as exc:  # each caller gets an error of its own (StoreUnavailable for Redis's)
                    for _key, _args, fut in calls:
                        if not fut.done():
                            err = errors.StoreUnavailable(str(exc))
                            err.__cause__ = exc
                            fut.set_exception(err)
                    continue
                for i, (_key, _args, fut) in enumerate(calls):
                    if not fut.done():
                        fut.set_result((int(flat[2 * i]), int(flat[2 * i + 1])))
        finally:
            self._sender = None

    async def state(self, account: core_accounts.Account) -> QuotaState:
        _status, used, end = await self._call(account, "state", time.time())
        return QuotaState(account.quota_limit, used, account.quota_interval, account.quota_unit, end)

    async def take(self, account: core_accounts.Account, n: int = 1) -> QuotaState:
        now = time.time()
        status, used, end = await self._call(account, "take", now, n)
        if status == 0:
            raise _exceeded(account, end - now)
        return QuotaState(account.quota_limit, used, account.quota_interval, account.quota_unit, end)

    async def give_back(self, account: core_accounts.Account, n: int = 1) -> None:
        await self._call(account, "give", time.time(), n)


class RedisTokenBuckets:
    """Token buckets shared by every node: a hash per key (tokens, last refill), refilled by Redis's clock."""

    def __init__(self, client: Any, *, prefix: str = "smsgate:") -> None:
        self._prefix = prefix
        self._script = client.register_script(_BUCKET_LUA)

    async def _run(self, rates: Sequence[Rate], n: int, mode: str) -> tuple[int, float]:
        args: list[Any] = [n, mode]
        for r in rates:
            args += [repr(float(r.rate)), repr(float(r.burst))]
        ok, wait = await _redis(self._script(keys=[f"{self._prefix}bucket:{r.key}" for r in rates], args=args))
        return int(ok), float(wait)

    async def take(self, key: str, rate: float, burst: float | None = None) -> None:
        await self.take_all([Rate.of(key, rate, burst)])

    async def take_all(self, rates: Sequence[Rate], n: int = 1) -> None:
        if not rates:
            return
        ok, wait = await self._run(rates, n, "all")
        if not ok:
            raise errors.RateLimited(retry_after=wait)

    async def reserve(self, rate: Rate, n: int) -> float:
        _ok, wait = await self._run([rate], n, "debt")
        return wait


# KEYS[1]: a sorted set of failure times. ARGV: op (check|fail), limit, window seconds, a unique member suffix.
# Returns the seconds the key must still wait ("0": not blocked), as a string. Redis's clock, for every node alike.
_FAILURES_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if ARGV[1] == 'fail' then
  redis.call('ZADD', KEYS[1], now, t[1] .. '.' .. t[2] .. ':' .. ARGV[4])
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(limit + 1))
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
  return '0'
end
if redis.call('ZCARD', KEYS[1]) < limit then return '0' end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tostring(math.max(0.001, tonumber(oldest[2]) + window - now))
"""


class RedisFailures:
    """``Failures`` shared by every node: a sorted set per key that expires with its window."""

    def __init__(self, client: Any, limit: int, window: float, *, prefix: str = "smsgate:") -> None:
        self.limit, self.window = limit, window
        self._prefix = prefix
        self._script = client.register_script(_FAILURES_LUA)

    async def _run(self, key: str, op: str) -> float:
        import secrets

        args = [op, self.limit, repr(float(self.window)), secrets.token_hex(4)]
        return float(await _redis(self._script(keys=[f"{self._prefix}authfail:{key}"], args=args)))

    async def blocked(self, key: str) -> float:
        return await self._run(key, "check")

    async def failed(self, key: str) -> None:
        await self._run(key, "fail")


class RedisSeenOnce:
    """``SeenOnce`` shared by every node: ``SET NX`` with the key's time to live."""

    def __init__(self, client: Any, *, prefix: str = "smsgate:") -> None:
        self._client = client
        self._prefix = prefix

    async def first(self, key: str, ttl: float) -> bool:
        done = await _redis(
            self._client.set(f"{self._prefix}seen:{key}", b"1", nx=True, px=max(1, math.ceil(ttl * 1000)))
        )
        return bool(done)


class FailureLimiter(Protocol):
    async def blocked(self, key: str) -> float: ...
    async def failed(self, key: str) -> None: ...


class Remembered(Protocol):
    async def first(self, key: str, ttl: float) -> bool: ...


async def _redis(call: Awaitable[Any]) -> Any:
    """Redis errors become StoreUnavailable, so every dialect answers with its own 'try again later'."""
    import redis

    try:
        return await call
    except redis.RedisError as exc:
        raise errors.StoreUnavailable(f"the limits store (Redis) is unavailable: {exc}") from exc


def redis_client(url: str) -> Any:
    """An asyncio Redis client with bounded waits (every network await has a timeout)."""
    import redis.asyncio

    return redis.asyncio.Redis.from_url(url, socket_timeout=5.0, socket_connect_timeout=5.0)
