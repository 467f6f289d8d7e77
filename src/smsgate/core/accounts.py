"""Accounts and their quota windows, as plain values.

One api_key/api_secret pair is at once the OAuth2 client, the Vonage key/secret and the Kaarai Basic user.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Sequence

QUOTA_UNITS = ("minute", "hour", "day", "week", "month")


@dataclasses.dataclass(frozen=True, slots=True)
class Account:
    id: str
    name: str
    api_key: str
    status: str = "active"
    level: str = "demo"
    default_sender: str | None = None
    may_choose_sender: bool = True
    allowed_senders: Sequence[str] | None = None
    allowed_countries: Sequence[str] | None = None
    demo_allowlist: Sequence[str] | None = None
    blocked_prefixes: Sequence[str] | None = None
    quota_limit: int | None = None
    quota_interval: int = 1
    quota_unit: str = "day"
    rate_limit_tps: float | None = None
    balance: int = 0
    signature_secret: str | None = None
    signature_method: str = "md5hash"
    sign_webhooks: bool = False
    receipt_url: str | None = None
    inbound_url: str | None = None
    webhook_method: str = "POST"
    webhook_format: str = "json"
    created_at: float = 0.0
    credential_gen: int = 0  # raised by a secret rotation or a disable: older tokens are dead
    sandbox_only: bool = False  # traffic only to sandbox connectors (the demo account)
    allow_sim_messages: bool = False  # silent (PID 0x40), SIM data download (PID 0x7F) and class-2 binary messages
    parent_id: str | None = None  # a sub-account's parent: it pays for this account's traffic and sees its messages
    stop_keywords: Sequence[str] | None = None  # None: core.optout.STOP_KEYWORDS
    start_keywords: Sequence[str] | None = None  # None: core.optout.START_KEYWORDS
    optout_reply: str | None = None  # confirmation sent back on a STOP; None: none
    retention_days: int | None = None  # None: the gateway's SMSGATE_RETENTION_DAYS; 0: keep forever
    content_retention_days: int | None = None  # None: SMSGATE_CONTENT_RETENTION_DAYS; 0: keep forever
    default_priority: str = "normal"  # the lane of a message that names none (core.schedule.Priority)

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def payer(self) -> str:
        """The account whose balance pays for this one's messages: its parent's, for a sub-account."""
        return self.parent_id or self.id


@dataclasses.dataclass(frozen=True, slots=True)
class QuotaWindow:
    start: float
    end: float


_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}


def quota_window(now: float, interval: int, unit: str) -> QuotaWindow:
    """The calendar-aligned window (UTC) holding ``now``: e.g. 24 hours from midnight, 1 month from the 1st."""
    if unit not in QUOTA_UNITS or interval < 1:
        raise ValueError(f"bad quota interval {interval} {unit}")
    if unit == "month":
        t = dt.datetime.fromtimestamp(now, dt.UTC)
        months = t.year * 12 + (t.month - 1)
        first = months - months % interval
        start = dt.datetime(first // 12, first % 12 + 1, 1, tzinfo=dt.UTC)
        last = first + interval
        end = dt.datetime(last // 12, last % 12 + 1, 1, tzinfo=dt.UTC)
        return QuotaWindow(start.timestamp(), end.timestamp())
    seconds = _UNIT_SECONDS[unit] * interval
    origin = 4 * 86400 if unit == "week" else 0  # weeks start on Monday (1970-01-05)
    start_s = now - ((now - origin) % seconds)
    return QuotaWindow(float(int(start_s)), float(int(start_s) + seconds))


@functools.lru_cache(maxsize=256)
def format_reset(ts: float) -> str:
    """``quota-reset-UTC`` value: KPN publishes no capture, so an unambiguous ISO-8601 UTC time. Cached: every
    KPN answer carries it, a window's end changes once per window, and ``strftime`` was ~3 % of a send's CPU."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
