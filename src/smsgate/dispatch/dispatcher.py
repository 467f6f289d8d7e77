"""Claims submit jobs, hands their parts to connectors in batches, records each outcome.

Two ways in: the fast path (``enqueue``: a message just committed by this node, already claimed in the accept
transaction, so no read is needed) and the poll loop (jobs of dead nodes, retries that came due, jobs that did
not fit the in-memory queue). Each connector has a feeder that packs parts of many messages into one
``Connector.submit`` call and keeps several batches in flight, so an SMPP window stays full.

Outcomes are written through the group committer; the job leaves the outbox in the same transaction that
records its parts as submitted, and a retry puts it back with its ``run_at``. A crash at any point leaves the
job in the outbox, claimed by a node that stops heart-beating, and another (or the restarted) node takes it.

Routing happens here, at submit time: the message's rule (``core.routing``) names one connector or several, and
a job goes to the queue of the one its strategy picks among those ``available`` now (not paused, bound, circuit
not open). A job whose connector cannot take it when its batch comes up, or whose parts come back as RETRY that
certainly did not go out, or as rejected on a rule with ``reroute_on = ["rejected"]``, is offered at once to a
connector of its route it has not tried yet, still claimed and in memory; when none is left it goes back to the
outbox. Each attempt is an event: ``submitted``/``rejected`` per part (with the connector and upstream id),
``rerouted`` and ``retry`` per message. The part row records the connector that took it, so receipts match.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from smsgate.connectors import base
from smsgate.core import backoff, routing
from smsgate.core import events as core_events
from smsgate.core import message as core_message
from smsgate.dispatch import jobs as dispatch_jobs
from smsgate.dispatch import lanes
from smsgate.dispatch import throttle as dispatch_throttle
from smsgate.store import committer as store_committer
from smsgate.store import messages as store_messages
from smsgate.store import outbox as store_outbox
from smsgate.store import reads as store_reads

log = logging.getLogger(__name__)
Status = core_message.Status
# a message whose route has no usable connector is looked at again after its backoff, but at least this often,
# so traffic resumes soon after a long outage rather than after a five-minute backoff
ROUTE_RECHECK = 30.0
EXPIRED = "validity period expired before submit"
MIN_WAIT = 0.01
HAND_SECONDS = 0.25  # a TPS-capped connector's batch: this long at its rate
THROTTLED_BATCHES = 2  # and this many batches in flight at once (about half a second of its rate in all)  # the poll loop's shortest sleep: a job due "now" that another claim beat us to costs no busy loop


class Dispatcher:
    def __init__(
        self,
        *,
        reads: store_reads.MessageReads,
        committer: store_committer.GroupCommitter,
        outbox: store_outbox.Outbox,
        connectors: Mapping[str, base.Connector],
        router: routing.Router,
        batch_size: int = 500,
        in_flight_batches: int = 8,
        poll_interval: float = 0.5,
        max_queue: int = 50_000,
        throttle: dispatch_throttle.SharedThrottle | None = None,
        fence: bool = False,
        linger: float = 0.002,
        caps: Mapping[str, float] | None = None,
    ) -> None:
        self._reads = reads
        self._linger = linger
        self._committer = committer
        self._outbox = outbox
        self._connectors = dict(connectors)
        self._router = router
        self._pickers: dict[routing.Route, routing.Picker] = {}
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._max_queue = max_queue
        self._throttle = throttle  # a TPS cap shared with the other nodes (Redis), per connector
        # several nodes: confirm the claims just before submitting, see _still_held
        self._fence = fence
        self._queues: dict[str, lanes.Lanes[dispatch_jobs.Job]] = {n: lanes.Lanes() for n in self._connectors}
        # A connector with a TPS cap gets HAND_SECONDS of its rate per batch and THROTTLED_BATCHES batches at a time:
        # what it holds waiting for its pace is then a fraction of a second, so a high-priority job queued here
        # overtakes a bulk backlog instead of waiting behind the thousands of parts a full window of batches holds.
        caps = {n: tps for n, tps in (caps or {}).items() if n in self._connectors and tps > 0}
        self._batch_parts = {n: max(1, math.ceil(caps[n] * HAND_SECONDS)) if n in caps else batch_size
                             for n in self._connectors}  # fmt: skip
        self._slots: dict[str, asyncio.Semaphore] = {
            n: asyncio.Semaphore(THROTTLED_BATCHES if n in caps else in_flight_batches) for n in self._connectors
        }
        self._in_memory: set[str] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._batches: set[asyncio.Task[None]] = set()
        self.submitted = 0
        # parts by outcome for each connector (submitted, rejected, unknown, retried, rerouted), for /metrics
        self.counts: dict[str, dict[str, int]] = {n: {} for n in self._connectors}

    # -- entry points -------------------------------------------------------------------------------------
    def has_room(self) -> bool:
        """Whether a new message may take the fast path (and be claimed in its accept transaction)."""
        return len(self._in_memory) < self._max_queue

    def enqueue(self, jobs: list[dispatch_jobs.Job]) -> None:
        for job in jobs:
            if job.message_id in self._in_memory:
                continue
            self._in_memory.add(job.message_id)
            self._place(job, self._choose(job))

    def queued(self, name: str) -> int:
        """Jobs waiting in memory for this connector."""
        q = self._queues.get(name)
        return q.qsize() if q is not None else 0

    def drain(self, name: str) -> int:
        """Take the jobs waiting for a connector that can no longer take them (paused) out of its queue: each goes
        to another connector of its route or back to the outbox, so the connector holds nothing."""
        q = self._queues[name]
        jobs = []
        while not q.empty():
            jobs.append(q.get_nowait())
        if jobs:
            task = asyncio.create_task(self._run_batch(name, jobs), name=f"dispatch-drain-{name}")
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)
        return len(jobs)

    # -- routing -----------------------------------------------------------------------------------------------------
    def _route(self, job: dispatch_jobs.Job) -> routing.Route:
        if job.route is None:
            job.route = self._router.route(
                digits=job.recipient.lstrip("+"), country=job.country, account=job.account_id, dialect=job.dialect
            )
        return job.route

    def _usable(self, name: str) -> bool:
        c = self._connectors.get(name)
        return c is not None and c.available

    def _retry_in(self, name: str) -> float | None:
        c = self._connectors.get(name)
        return c.health().retry_in if c is not None else None

    def _choose(self, job: dispatch_jobs.Job) -> str | None:
        """The connector of the job's route to try next, among the usable ones it has not tried; None if none."""
        route = self._route(job)
        picker = self._pickers.setdefault(route, routing.Picker()) if route.strategy == "weighted" else None
        return route.choose(self._usable, exclude=job.tried, picker=picker)

    def _place(self, job: dispatch_jobs.Job, name: str | None) -> None:
        """Queue the job for ``name``; with None (nothing usable now), for the first connector of its route that
        exists here, whose batch finds it unavailable and hands the job back to the outbox."""
        if name is None:
            route = self._route(job)
            name = next((c for c in (*route.connectors, job.connector) if c in self._queues), None)
            if name is None:  # the runtime refuses such a config; should it happen, the job waits for its lease
                log.error("message %s: no connector of its route %s exists here", job.message_id, route.connectors)
                self._in_memory.discard(job.message_id)
                return
        self._queues[name].put_nowait(job, job.lane)

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._poll_loop(), name="dispatcher-poll"))
        self._tasks.append(asyncio.create_task(self._lease_loop(), name="dispatcher-lease"))
        for name in self._connectors:
            self._tasks.append(asyncio.create_task(self._feed(name), name=f"dispatcher-feed-{name}"))

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self._batches:
            await asyncio.wait(self._batches, timeout=10)
        self._tasks.clear()

    @property
    def backlog(self) -> int:
        return len(self._in_memory)

    # -- loops ----------------------------------------------------------------------------------------------
    async def _poll_loop(self) -> None:
        """Claim what is due; then sleep until woken (NOTIFY, a retry here), the next job comes due, or the poll
        interval ends. The wake flag is cleared before the claim, so a wake-up that arrives during it is kept."""
        while True:
            self._wake.clear()
            wait = self._poll_interval
            try:
                room = self._max_queue - len(self._in_memory)
                if room > 0:
                    claimed = await self._outbox.claim("submit", min(room, self._batch_size * 4))
                    claimed = [(ref, att) for ref, att in claimed if ref not in self._in_memory]
                    if claimed:
                        self.enqueue(await self.load_jobs(dict(claimed)))
                        if len(claimed) >= self._batch_size:
                            continue  # more may be waiting
                    # a retry put back by any node comes due at its run_at: be there, not a poll interval later
                    due = await self._outbox.next_due("submit")
                    if due is not None:
                        wait = min(wait, max(due - time.time(), MIN_WAIT))
            except Exception:
                log.exception("dispatcher poll failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(max(self._outbox.lease / 3, 0.5))
            with contextlib.suppress(Exception):
                await self._outbox.extend("submit", list(self._in_memory))

    async def _feed(self, name: str) -> None:
        """Batches for one connector: a slot first, then the jobs, so the jobs a batch takes are chosen (by lane)
        when it can go, not held while it waits for a slot."""
        q = self._queues[name]
        slots = self._slots[name]
        size = self._batch_parts[name]
        while True:
            await slots.acquire()
            try:
                first = await q.get()
            except BaseException:
                slots.release()
                raise
            jobs = [first]
            n = self._take(q, jobs, len(first.parts), size)
            if n < size and self._linger > 0:
                # a short wait lets the next accept commit's jobs join this batch: one socket write, one task and
                # one result write for both (a write to the SMSC's socket is the dearest step of a submit)
                await asyncio.sleep(self._linger)
                n = self._take(q, jobs, n, size)
            task = asyncio.create_task(self._run_batch(name, jobs), name=f"dispatch-batch-{name}")
            self._batches.add(task)
            task.add_done_callback(functools.partial(self._batch_done, slots))

    @staticmethod
    def _take(q: lanes.Lanes[dispatch_jobs.Job], jobs: list[dispatch_jobs.Job], n: int, size: int) -> int:
        """Move queued jobs into ``jobs`` until it holds ``size`` parts; returns the parts it holds."""
        while n < size and not q.empty():
            job = q.get_nowait()
            jobs.append(job)
            n += len(job.parts)
        return n

    def _batch_done(self, slots: asyncio.Semaphore, task: asyncio.Task[None]) -> None:
        self._batches.discard(task)
        slots.release()

    async def _run_batch(self, name: str, jobs: list[dispatch_jobs.Job]) -> None:
        connector = self._connectors[name]
        now = time.time()
        expired = [j for j in jobs if now >= j.expires_at]
        live = await self._still_held([j for j in jobs if now < j.expires_at])
        moves: list[tuple[dispatch_jobs.Job, str]] = []
        if not connector.available:  # went down, paused or throttled since the job was queued: try another
            stay = []
            for j in live:
                j.tried.add(name)
                alt = self._choose(j)
                if alt is None:
                    stay.append(j)
                else:
                    moves.append((j, alt))
            live = stay
        parts = [p for j in live for p in j.parts if j.part_status[p.part_id] is Status.ACCEPTED]
        outcomes: dict[str, base.SubmitOutcome] = {}
        if parts:
            if connector.available:
                try:
                    for o in await self._submit(name, connector, parts):
                        outcomes[o.part_id] = o
                except Exception as exc:  # a connector bug must not lose the jobs: retry them
                    log.exception("connector %s failed a batch", name)
                    outcomes = {
                        p.part_id: base.SubmitOutcome(p.part_id, base.SubmitStatus.RETRY, error=str(exc)) for p in parts
                    }
            else:  # no connector of the route can take these now: look again when one may, not after a long backoff
                health = connector.health()
                why = "route unavailable: " + health.detail
                for j in live:
                    wait = min(_backoff(j.attempts), ROUTE_RECHECK)
                    hints = [h for h in (self._retry_in(c) for c in self._route(j).connectors) if h is not None]
                    if hints:
                        wait = min(wait, max(min(hints), 0.2))
                    for p in j.parts:
                        outcomes[p.part_id] = base.SubmitOutcome(
                            p.part_id, base.SubmitStatus.RETRY, error=why, retry_after=wait, unsent=True
                        )
        results = []
        for j in live:
            result, alt = self._result(j, name, outcomes, now)
            results.append(result)
            if alt is not None:
                moves.append((j, alt))
        results += [self._expire(j, name) for j in expired]
        moved = {j.message_id for j, _alt in moves}
        try:
            # The parts went to the network already: a lost outcome would leave the job claimed until its lease ran
            # out and then submit it again. Meanwhile the jobs stay in memory, so the lease loop keeps their claims.
            if results and not await self._committer.write_until_stored("job_results", results):
                log.error("%d submit results not recorded; the jobs are taken back after the lease", len(results))
        finally:
            for j in jobs:
                if j.message_id not in moved:
                    self._in_memory.discard(j.message_id)
        for j, alt in moves:  # after the write, so the next connector's results are recorded after this one's
            self._place(j, alt)
        self._count(name, outcomes.values(), len(moves))
        if any(r.retry_at is not None for r in results):
            self.wake()

    def _count(self, name: str, outcomes: Iterable[base.SubmitOutcome], rerouted: int) -> None:
        counts = self.counts.setdefault(name, {})
        for o in outcomes:
            key = _COUNTED[o.status]
            counts[key] = counts.get(key, 0) + 1
        if rerouted:
            counts["rerouted"] = counts.get("rerouted", 0) + rerouted
        self.submitted = sum(c.get("submitted", 0) for c in self.counts.values())

    async def _still_held(self, jobs: list[dispatch_jobs.Job]) -> list[dispatch_jobs.Job]:
        """The jobs this node still holds, their leases renewed. A node that was too slow to heart-beat is
        taken for dead and its jobs are claimed by another node; without this check both would submit them."""
        if not self._fence or not jobs:
            return jobs
        try:
            held = await self._outbox.extend("submit", [j.message_id for j in jobs])
        except Exception as exc:  # the store is unreachable: the results cannot be written either; try anyway
            log.warning("could not confirm %d claims before submitting: %s", len(jobs), exc)
            return jobs
        if len(held) < len(jobs):
            log.warning("%d jobs were taken over by another node; not submitting them here", len(jobs) - len(held))
        return [j for j in jobs if j.message_id in held]

    async def _submit(
        self, name: str, connector: base.Connector, parts: list[base.OutboundPart]
    ) -> list[base.SubmitOutcome]:
        if self._throttle is None or not self._throttle.limits(name):
            return list(await connector.submit(parts))
        out: list[base.SubmitOutcome] = []
        # never cut a message: an HTTP upstream takes a message's parts together, as one text
        for chunk in self._throttle.chunks(name, parts, key=_message_of):
            await self._throttle.acquire(name, len(chunk))
            chunk, late = _unexpired(chunk)  # the wait for the shared cap may have outlasted a validity
            out += late
            try:
                out += await connector.submit(list(chunk)) if chunk else []
            except Exception as exc:
                if not out:
                    raise
                # keep what the earlier chunks submitted: only the rest is retried
                log.exception("connector %s failed a chunk", name)
                done = {o.part_id for o in out}
                out += [
                    base.SubmitOutcome(p.part_id, base.SubmitStatus.RETRY, error=str(exc))
                    for p in parts
                    if p.part_id not in done
                ]
                break
        return out

    # -- outcome -> result ----------------------------------------------------------------------------------
    def _result(
        self, job: dispatch_jobs.Job, connector: str, outcomes: Mapping[str, base.SubmitOutcome], now: float
    ) -> tuple[store_messages.JobResult, str | None]:
        """What this round did to the job, and the connector to offer its remaining parts to at once (or None)."""
        route = self._route(job)
        pending = [p for p in job.parts if job.part_status[p.part_id] is Status.ACCEPTED]
        got = {p.part_id: outcomes.get(p.part_id) for p in pending}

        def rerouting(o: base.SubmitOutcome | None) -> bool:
            if o is None:
                return False
            if o.status is base.SubmitStatus.RETRY:
                return o.unsent
            return o.status is base.SubmitStatus.FAILED and route.reroutes("rejected")

        again = [pid for pid, o in got.items() if o is None or o.status is base.SubmitStatus.RETRY or rerouting(o)]
        alt = None
        if again and all(rerouting(got[pid]) for pid in again):
            job.tried.add(connector)
            alt = self._choose(job)
        updates: list[store_messages.PartUpdate] = []
        retry_after: float | None = None
        reason = None
        took = False
        for pid, o in got.items():
            if o is None or o.status is base.SubmitStatus.RETRY or (alt is not None and rerouting(o)):
                reason = (o.error if o else None) or "no answer"
                if alt is None:
                    updates.append(store_messages.PartUpdate(pid, Status.ACCEPTED, connector))
                    wait = (o.retry_after if o and o.retry_after else 0.0) or _backoff(job.attempts)
                    retry_after = max(retry_after or 0.0, wait)
                continue
            if o.status is base.SubmitStatus.FAILED:
                st = Status.REJECTED
            elif o.status is base.SubmitStatus.EXPIRED:
                st = Status.EXPIRED
            else:  # ACCEPTED, or UNKNOWN: handed over, outcome not known (never sent again)
                st, took = Status.SUBMITTED, True
            job.part_status[pid] = st
            updates.append(
                store_messages.PartUpdate(pid, st, connector, o.network_id, o.error_code, o.error, note=o.note)
            )
        new_status = core_message.derive(job.part_status.values())
        done = retry_after is None and alt is None
        events: list[tuple[core_events.EventType, dict[str, Any]]] = []
        if alt is not None:
            events.append(
                (core_events.EventType.REROUTED, {"from": connector, "to": alt, "reason": reason, "parts": len(again)})
            )
        job.scheduled = False
        moved_to = connector if took and connector != job.connector else None
        if moved_to is not None:
            job.connector = connector
        result = store_messages.JobResult(
            message_id=job.message_id,
            account_id=job.account_id,
            updates=updates,
            message_status=new_status if new_status is not Status.ACCEPTED or job.scheduled else None,
            done=done,
            retry_at=None if done or alt is not None else min(now + (retry_after or 1.0), job.expires_at),
            retry_reason=reason,
            connector=connector,
            keep_claim=alt is not None,
            message_connector=moved_to,
            events=events,
        )
        return result, alt

    def _expire(self, job: dispatch_jobs.Job, connector: str) -> store_messages.JobResult:
        updates = []
        for pid, st in job.part_status.items():
            if st is Status.ACCEPTED:
                job.part_status[pid] = Status.EXPIRED
                updates.append(store_messages.PartUpdate(pid, Status.EXPIRED, connector, error_text=EXPIRED))
        return store_messages.JobResult(
            job.message_id, job.account_id, updates, core_message.derive(job.part_status.values()), done=True
        )

    # -- loading ----------------------------------------------------------------------------------------------
    async def load_jobs(self, refs: Mapping[str, int]) -> list[dispatch_jobs.Job]:
        jobs = []
        for message, parts in await self._reads.jobs(refs):
            job = dispatch_jobs.job_from(message, parts)
            job.attempts = refs[message.id]
            jobs.append(job)
        return jobs


def _unexpired(parts: Sequence[base.OutboundPart]) -> tuple[list[base.OutboundPart], list[base.SubmitOutcome]]:
    """The parts still valid now, and an ``EXPIRED`` outcome for each of the others (they are never sent)."""
    now = time.time()
    late = [p for p in parts if p.expires_at is not None and now >= p.expires_at]
    if not late:
        return list(parts), []
    gone = {p.part_id for p in late}
    outcomes = [base.SubmitOutcome(p.part_id, base.SubmitStatus.EXPIRED, error=EXPIRED) for p in late]
    return [p for p in parts if p.part_id not in gone], outcomes


def _message_of(part: base.OutboundPart) -> str:
    return part.message_id


_COUNTED = {
    base.SubmitStatus.ACCEPTED: "submitted",
    base.SubmitStatus.FAILED: "rejected",
    base.SubmitStatus.UNKNOWN: "unknown",
    base.SubmitStatus.EXPIRED: "expired",
    base.SubmitStatus.RETRY: "retried",
}


def _backoff(attempts: int) -> float:
    """1 s, 2 s, 4 s ... capped at 5 minutes, with jitter so retries of many messages spread out."""
    return backoff.delay(attempts, base=1.0, cap=300.0)
