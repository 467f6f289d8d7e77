"""The retention sweep: every ``interval`` seconds, delete and blank what is older than the limits
(``core.retention``), a small batch per transaction, without holding sends up.

Each batch is one write of the group committer (``lazy``: on PostgreSQL it commits beside the sends' lane, on
SQLite in the sends' next transaction), so a send waits at most one small batch. The batch is sized by time, not
count: what it costs the writer (its statements, and on SQLite the COMMIT that writes the pages they dirtied,
about a dozen index pages per message) aims at ``budget`` (1 ms), the next batch scaled by what the last one cost
(``core.retention.next_batch``), between 5 and ``batch`` messages. A fixed 100 a batch took 10-15 ms of the
write lock and sent the sends' p99 to 2.3-3x its quiet figure on a quiet machine (``bench/bench_retention.py``).
A pause between batches leaves the writer to the sends most of the time: after each batch the sweep waits
``idle_ratio`` times as long as it cost (9: the sweep has at most a tenth of the writer; at 3 the WAL writes and
checkpoints of ~1,000 deletions a second doubled the sends' p99 on a quiet machine in two runs of three; at 9
with 2 ms batches in one of three, with 1 ms batches in neither of two: see docs/performance.md), so a slower disk
or a busier gateway slows the sweep. On PostgreSQL one node sweeps at a time: each batch takes an advisory
lock, and a node that cannot get it leaves the turn to the node that has it. A gateway that keeps everything
(the default) reads the accounts' own limits once per interval and does nothing else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

from smsgate.core import retention
from smsgate.store import committer as store_committer
from smsgate.store import retention as store_retention

log = logging.getLogger(__name__)
Tx = Any
Done = tuple[int, float]  # messages deleted or blanked, seconds of work in the transaction


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    """One batch: delete (``blank`` False) or blank the messages of ``scope`` older than ``before``."""

    scope: retention.Scope
    before: float
    blank: bool
    limit: int
    planned: tuple[retention.Scope, ...] = ()  # every scope this pass blanks (store.retention keeps their marks)


@dataclasses.dataclass(slots=True)
class Report:
    deleted: int = 0
    blanked: int = 0
    skipped: int = 0  # batches another node had the turn for (PostgreSQL)


class Retention:
    def __init__(
        self,
        limits: store_retention.Limits,
        committer: store_committer.GroupCommitter,
        *,
        days: int,
        content_days: int,
        batch: int = 100,
        budget: float = 0.001,
        pause: float = 0.01,
        idle_ratio: float = 9.0,
    ) -> None:
        self._limits = limits
        self._committer = committer
        self.days, self.content_days = days, content_days
        self.batch = batch
        self.budget = budget
        self._size = min(batch, 5)  # the next batch's size: starts small, grows while batches stay in budget
        self.pause = pause
        self.idle_ratio = idle_ratio
        committer.register("retention", self._write, lazy=True)
        committer.after_commit("retention", self._committed)
        self._commit = 0.0  # seconds the COMMIT of the sweep's last batch took (SQLite; 0 on PostgreSQL)

    def _committed(self, kind: str, items: Sequence[Any], results: Sequence[Any]) -> None:
        self._commit = self._committer.commit_seconds

    async def _write(self, tx: Tx, items: Sequence[Step]) -> list[Done | None]:
        if not await store_retention.take_turn(tx):
            return [None] * len(items)
        out: list[Done | None] = []
        for step in items:
            started = time.perf_counter()
            if step.blank:
                count = await store_retention.blank_older(tx, step.scope, step.before, step.limit, step.planned)
            else:
                count = await store_retention.delete_older(tx, step.scope, step.before, step.limit)
            out.append((count, time.perf_counter() - started))
        return out

    async def sweep(self, now: float | None = None) -> Report:
        """One pass over every job of the plan, batch by batch until nothing is left."""
        own = await self._limits.own()
        report = Report()
        jobs = retention.plan(time.time() if now is None else now, self.days, self.content_days, own)
        blanking = tuple(j.scope for j in jobs if j.blank_before is not None)
        for job in jobs:
            if job.delete_before is not None:
                await self._run(Step(job.scope, job.delete_before, blank=False, limit=self._size), report)
            if job.blank_before is not None:
                await self._run(Step(job.scope, job.blank_before, True, self._size, blanking), report)
        return report

    async def _run(self, step: Step, report: Report) -> None:
        while True:
            step = dataclasses.replace(step, limit=self._size)
            done = await self._committer.write("retention", step)
            if done is None:
                report.skipped += 1
                return  # another node is sweeping: its pass covers this
            count, work = done
            if count:  # the sends sharing the batch's commit waited for its work and for writing its pages
                self._size = retention.next_batch(step.limit, work + self._commit, self.budget, self.batch)
            if step.blank:
                report.blanked += count
            else:
                report.deleted += count
            if count < step.limit:
                return
            await asyncio.sleep(max(self.pause, (work + self._commit) * self.idle_ratio))

    async def run(self, interval: float) -> None:
        """Sweep every ``interval`` seconds until cancelled; a failed pass is logged and tried again later."""
        while True:
            try:
                report = await self.sweep()
                if report.deleted or report.blanked:
                    log.info("retention: %d messages deleted, %d blanked", report.deleted, report.blanked)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("retention sweep failed: %s", exc)
            await asyncio.sleep(interval)
