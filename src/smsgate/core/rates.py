"""The one token bucket: ``rate`` tokens a second, holding at most ``burst``; the clock is passed in.

Every throughput limit is one of these: an account's, a sender's or a destination's TPS at accept
(``limits.TokenBuckets``, in parts), a client's token requests, and a connector's ``max_tps`` in the SMPP and
HTTP connectors (Redis holds the same arithmetic in Lua when several nodes share a limit).
"""

from __future__ import annotations


class Bucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def level(self, now: float) -> float:
        """Tokens held at ``now`` (negative while a debt is paid off)."""
        return min(self.burst, self.tokens + (now - self.stamp) * self.rate)

    def wait_for(self, n: float, now: float) -> float:
        """Seconds until ``n`` tokens are held, or the bucket is full when ``n`` is more than it can ever hold."""
        need = min(n, self.burst)
        held = self.level(now)
        return 0.0 if held >= need else (need - held) / self.rate

    def spend(self, n: float, now: float) -> float:
        """Take ``n`` tokens now, going into debt if need be; the seconds until the debt is paid."""
        self.tokens = self.level(now) - n
        self.stamp = now
        return max(0.0, -self.tokens / self.rate)

    def grant(self, n: int, now: float) -> int:
        """Take as many whole tokens as are held now, up to ``n``."""
        self.tokens = self.level(now)
        self.stamp = now
        k = min(n, int(self.tokens))
        self.tokens -= k
        return k

    def next_token(self) -> float:
        """Seconds until one whole token is held (at least a millisecond)."""
        return max(0.001, (1.0 - self.tokens) / self.rate)
