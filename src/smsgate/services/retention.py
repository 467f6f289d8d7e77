"""The retention sweep: every ``interval`` seconds, delete and blank what is older than the limits
(``core.retention``), a small batch per transaction, without holding sends up.

Each batch is one write of the group committer (``lazy``: on PostgreSQL it commits beside the sends' lane, on
SQLite between their batches), so a send waits at most one small batch; a short pause between batches leaves the
writer to the sends most of the time: after each batch the sweep waits ``idle_ratio`` times as long as the batch
took (3: the sweep has at most a quarter of the writer), so a slower disk or a busier gateway slows the sweep,
not the sends. On PostgreSQL one node sweeps at a time: each batch takes an advisory
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


@dataclasses.dataclass(frozen=True, slots=True)
class Step:
    """One batch: delete (``blank`` False) or blank the messages of ``scope`` older than ``before``."""

    scope: retention.Scope
    before: float
    blank: bool
    after: store_retention.Mark | None = None


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
        pause: float = 0.01,
        idle_ratio: float = 3.0,
    ) -> None:
        self._limits = limits
        self._committer = committer
        self.days, self.content_days = days, content_days
        self.batch = batch
        self.pause = pause
        self.idle_ratio = idle_ratio
        self._marks: dict[str, store_retention.Mark | None] = {}  # how far blanking got, per scope
        committer.register("retention", self._write, lazy=True)

    async def _write(self, tx: Tx, items: Sequence[Step]) -> list[tuple[int, store_retention.Mark | None] | None]:
        if not await store_retention.take_turn(tx):
            return [None] * len(items)
        out: list[tuple[int, store_retention.Mark | None] | None] = []
        for step in items:
            if step.blank:
                out.append(await store_retention.blank_older(tx, step.scope, step.before, step.after, self.batch))
            else:
                out.append((await store_retention.delete_older(tx, step.scope, step.before, self.batch), None))
        return out

    async def sweep(self, now: float | None = None) -> Report:
        """One pass over every job of the plan, batch by batch until nothing is left."""
        own = await self._limits.own()
        report = Report()
        for job in retention.plan(time.time() if now is None else now, self.days, self.content_days, own):
            if job.delete_before is not None:
                await self._run(Step(job.scope, job.delete_before, blank=False), report)
            if job.blank_before is not None:
                await self._run(Step(job.scope, job.blank_before, blank=True), report)
        return report

    async def _run(self, step: Step, report: Report) -> None:
        while True:
            if step.blank:
                step = dataclasses.replace(step, after=self._marks.get(step.scope.key))
            started = time.monotonic()
            done = await self._committer.write("retention", step)
            took = time.monotonic() - started
            if done is None:
                report.skipped += 1
                return  # another node is sweeping: its pass covers this
            count, mark = done
            if step.blank:
                self._marks[step.scope.key] = mark
                report.blanked += count
            else:
                report.deleted += count
            if count < self.batch:
                return
            await asyncio.sleep(max(self.pause, took * self.idle_ratio))

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
