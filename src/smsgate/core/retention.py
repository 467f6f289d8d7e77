"""How long messages are kept, as values: the gateway's two limits, each account's own, and the cut-off times a
sweep works to.

Two limits, in days (0 or None: keep forever, the default): after ``days`` a message goes with its parts, events
and webhook log; after ``content_days`` its text, binary payload and webhook bodies are blanked, and what an
invoice or a dispute needs (status, counts, price, times) stays. An account's own value replaces the gateway's.
Pure: the store deletes and blanks (``store.retention``), ``services.retention`` runs the sweep.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

DAY = 86_400.0


@dataclasses.dataclass(frozen=True, slots=True)
class Scope:
    """Whose messages: one account's, or every account's but those with their own limits (``account`` None)."""

    account: str | None
    exclude: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """Names the scope for as long as it holds the same messages: the default scope changes with the set of
        accounts that have their own limits (a blanking pass then starts over for it)."""
        return self.account if self.account is not None else "*:" + ",".join(self.exclude)


@dataclasses.dataclass(frozen=True, slots=True)
class Job:
    scope: Scope
    delete_before: float | None  # epoch seconds; None: delete nothing
    blank_before: float | None  # None: blank nothing


def _before(now: float, days: int | None) -> float | None:
    return now - days * DAY if days else None


def plan(now: float, days: int, content_days: int, own: Mapping[str, tuple[int | None, int | None]]) -> list[Job]:
    """The sweep's jobs: the gateway's limits for every account without its own, then each account with its own
    (``own``: account -> (days, content_days), None where it keeps the gateway's). Jobs with nothing to do are
    left out, so a gateway that keeps everything plans nothing."""
    jobs = [Job(Scope(None, tuple(sorted(own))), _before(now, days), _before(now, content_days))]
    for account, (d, c) in sorted(own.items()):
        jobs.append(
            Job(Scope(account), _before(now, days if d is None else d), _before(now, content_days if c is None else c))
        )
    out = []
    for job in jobs:
        blank = job.blank_before
        if blank is not None and job.delete_before is not None and blank <= job.delete_before:
            blank = None  # deleted before it would be blanked
        if job.delete_before is not None or blank is not None:
            out.append(dataclasses.replace(job, blank_before=blank))
    return out


def next_batch(size: int, took: float, budget: float, cap: int, floor: int = 5) -> int:
    """The size of the sweep's next batch, so that what one batch costs the writer stays near ``budget`` seconds:
    it runs inside a commit the sends share, so its time (its statements, and writing the pages they dirtied) is
    what a send waiting behind it loses. Scaled by how long ``size`` messages took (``took``), growing at most
    twofold a step so one fast batch on a cold cache cannot jump to ``cap`` (``SMSGATE_RETENTION_BATCH``); never
    below ``floor`` (or ``cap`` if smaller): a commit's own fsync, which the sends pay anyway, is in ``took``, and on
    a loaded disk it alone would shrink batches to one message and the sweep to a crawl."""
    low = min(floor, cap)
    if took <= 0:
        return max(low, min(cap, size * 2))
    return max(low, min(cap, size * 2, int(size * budget / took)))
