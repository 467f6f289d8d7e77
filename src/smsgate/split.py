"""``serve --processes 2`` on SQLite: one node as two processes sharing the database file, one per core.

The *accept* process (this one, the one the user started) serves HTTP and decides everything a send decides today:
credentials, quotas, rate limits, balances, the accept commit. While the *delivery* process (a child) has room, a
message is claimed for it in the accept transaction and its job handed over the line after the commit (``link``);
otherwise it stays unclaimed in the outbox and the delivery process is told to look. The delivery process runs the dispatcher, the
connectors, submit results, receipts, inbound messages, webhooks, the sweeper and retention. Each has its own group
commit; SQLite's write lock serialises their short transactions (the committer waits for it on its loop). A read
(``GET /v1/messages/{id}``) sees the one file.

Supervision: the delivery process dies with this one (``PR_SET_PDEATHSIG``, so a SIGKILL of ``smsgate serve``
leaves no half behind), and when it dies this one starts another (its claims come back when its heartbeat stops,
as for any dead node); one that dies within ``CRASH_LOOP`` seconds of its start stops the node (exit status 1).
SIGTERM stops both: HTTP first, then the delivery process gives its claims back, then the accept process ends.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import dataclasses
import json
import logging
import multiprocessing
import operator
import os
import pickle
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

from smsgate import link, logs, runtime
from smsgate.connectors import base, sandbox
from smsgate.core import handsets
from smsgate.core import message as core_message
from smsgate.dispatch import jobs as dispatch_jobs
from smsgate.settings import Settings

log = logging.getLogger(__name__)

HANDOVER_LIMIT = 20_000  # jobs the delivery process may hold in memory before new ones wait in the outbox
STATUS_EVERY = 0.5  # seconds between the delivery process's connector reports
CRASH_LOOP = 10.0  # a delivery process that dies sooner after its start is not restarted: the node stops
READY_TIMEOUT = 60.0
STOP_GRACE = 20.0  # seconds the delivery process has to stop cleanly before it is killed


def problem(settings: Settings, processes: int) -> str | None:
    """Why ``--processes`` cannot run with these settings, or None."""
    if processes not in (1, 2):
        return "--processes (SMSGATE_PROCESSES) is 1 (everything in one process) or 2 (accept and delivery, SQLite)"
    if processes == 2 and not settings.effective_database_url.startswith("sqlite"):
        return "--processes 2 splits a node on SQLite; on PostgreSQL run --workers N (whole nodes) instead"
    return None


# -- wiring each half to the line -----------------------------------------------------------------------------------
def wire_accept(rt: runtime.Runtime, line: link.Link) -> None:
    rt.tell = line.send
    for c in rt.connectors.values():
        if isinstance(c, sandbox.SandboxNetwork):
            c.share_ids()  # handset replies typed through this process's API
    rt.changes.peer = lambda payload: line.send("change", payload)
    line.on("change", rt.changes.deliver)
    line.on("handset", rt.sandbox_control.arrived)
    rt.sandbox_control.on_behaviour = lambda account, b: line.send(
        "behaviour", json.dumps([account, b.as_json() if b is not None else None])
    )
    rt.sandbox_control.on_scripts = lambda account, rules: line.send(
        "scripts", json.dumps([account, {n: [r.as_json() for r in rs] for n, rs in rules.items()}])
    )
    rt.sandbox_control.on_cancel = lambda account, msisdn: line.send("cancel-replies", json.dumps([account, msisdn]))
    if rt.remote is not None:
        line.on("status", rt.remote.update)
    line.on("ready", lambda _p: None)


def wire_delivery(rt: runtime.Runtime, line: link.Link) -> None:
    rt.tell = line.send
    rt.changes.peer = lambda payload: line.send("change", payload)
    line.on("change", rt.changes.deliver)
    line.on("wake", lambda _p: rt.dispatcher.wake())
    line.on("jobs", lambda p: rt.dispatcher.enqueue(_jobs_of(p)))
    line.on("webhooks", lambda _p: rt.webhooks.wake())
    line.on("pauses", lambda p: rt.pausing.apply(json.loads(p)))
    line.on("sandbox-up", lambda p: _sandbox_up(rt, p == "1"))
    line.on("behaviour", lambda p: _behaviour(rt, p))
    line.on("scripts", lambda p: _scripts(rt, p))
    line.on("cancel-replies", lambda p: rt.sandbox_control.cancel_replies(*json.loads(p)))
    line.on("status?", lambda _p: line.send("status", _status(rt)))
    networks = {n for n, c in rt.connectors.items() if isinstance(c, sandbox.SandboxNetwork)}

    def handsets(_kind: str, items: Sequence[Any], _results: Sequence[Any]) -> None:
        accounts = {
            r.account_id for r in items if r.connector in networks and r.message_status is core_message.Status.SUBMITTED
        }
        for account_id in accounts:
            line.send("handset", account_id)

    if networks:
        rt.committer.after_commit("job_results", handsets)


def _behaviour(rt: runtime.Runtime, payload: str) -> None:
    account, raw = json.loads(payload)
    rt.sandbox_control.apply_behaviour(account, handsets.Behaviour.from_json(raw) if raw else None)


def _scripts(rt: runtime.Runtime, payload: str) -> None:
    account, raw = json.loads(payload)
    rt.sandbox_control.apply_scripts(account, {n: handsets.parse_rules(rules) for n, rules in raw.items()})


def _sandbox_up(rt: runtime.Runtime, up: bool) -> None:
    for c in rt.connectors.values():
        if isinstance(c, sandbox.SandboxNetwork):
            c.up = up
    if up:
        rt.dispatcher.wake()


# -- the delivery process ---------------------------------------------------------------------------------------------
def _die_with_parent() -> None:
    """Linux: the kernel kills this process when its parent dies, however it dies."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def delivery_main(settings: Settings, sock: socket.socket, log_level: str, log_format: str, parent: int) -> None:
    """The child's entry point (spawned: a fresh interpreter, nothing inherited but the settings and the socket)."""
    _die_with_parent()
    if os.getppid() != parent:  # it died while this one was starting, before the kernel was asked to tell us
        return
    logs.configure(log_level, log_format, access=False, prefix="[delivery] ")
    sys.setswitchinterval(settings.gil_switch_interval)
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:  # pragma: no cover - uvloop is a dependency
        runner = asyncio.Runner()
    with runner:
        runner.run(_deliver(settings, sock))
    logs.flush()


async def _deliver(settings: Settings, sock: socket.socket) -> None:
    line = link.Link(sock)
    await line.open()
    rt = runtime.Runtime(settings, role=runtime.DELIVERY)
    wire_delivery(rt, line)
    reading = asyncio.create_task(line.run(), name="link")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # Ctrl-C reaches the whole group: the parent says when to stop
        loop.add_signal_handler(sig, stop.set if sig == signal.SIGTERM else lambda: None)
    async with rt:
        line.send("status", _status(rt))
        line.send("ready", rt.node_id)
        status = asyncio.create_task(_report(rt, line), name="status")
        gone = asyncio.create_task(line.closed.wait())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({gone, stopping}, return_when=asyncio.FIRST_COMPLETED)
        rt.stopping = True
        for t in (status, gone, stopping):
            t.cancel()
    reading.cancel()
    await line.close()


def _status(rt: runtime.Runtime) -> str:
    return link.snapshot(
        rt.connectors, rt.dispatcher.queued, rt.dispatcher.counts, rt.dispatcher.backlog, rt.counters()
    )


async def _report(rt: runtime.Runtime, line: link.Link) -> None:
    last = ""
    beat = 0
    while True:
        now = _status(rt)
        beat += 1
        if now != last or beat % 4 == 0:
            line.send("status", now)
            last = now
        await asyncio.sleep(STATUS_EVERY / 4)


# A job crosses the line as plain values (its fields in order, its parts' likewise, statuses as their values), not
# as pickled objects: pickling the dataclasses and enum members cost ~5 µs per job in the accept process and ~6 to
# load in the delivery process (18 % of its CPU), ~1 µs and ~2.5 as values. The getters follow the dataclasses'
# fields, so a field added to ``Job`` or ``OutboundPart`` crosses too.
_JOB_FIELDS = [f.name for f in dataclasses.fields(dispatch_jobs.Job)]
_PARTS_AT = _JOB_FIELDS.index("parts")  # ``parts`` and ``part_status`` cross on their own, in this place
assert _JOB_FIELDS[_PARTS_AT + 1] == "part_status"
_job_values = operator.attrgetter(*(_JOB_FIELDS[:_PARTS_AT] + _JOB_FIELDS[_PARTS_AT + 2 :]))
_part_values = operator.attrgetter(*(f.name for f in dataclasses.fields(base.OutboundPart)))
_STATUS = {s.value: s for s in core_message.Status}


def _wire(job: dispatch_jobs.Job) -> tuple[Any, ...]:
    return _job_values(job), [_part_values(p) for p in job.parts], [(k, v.value) for k, v in job.part_status.items()]


def _unwire(values: tuple[Any, ...]) -> dispatch_jobs.Job:
    fields, parts, status = values
    part_list = [base.OutboundPart(*p) for p in parts]
    args: list[Any] = [*fields[:_PARTS_AT], part_list, {k: _STATUS[v] for k, v in status}, *fields[_PARTS_AT:]]
    return dispatch_jobs.Job(*args)


def _jobs_of(payload: str) -> list[dispatch_jobs.Job]:
    """A ``jobs`` line's jobs (``_job_lines``)."""
    return [_unwire(v) for v in pickle.loads(base64.b64decode(payload))]


def _job_lines(jobs: list[dispatch_jobs.Job]) -> list[str]:
    """``jobs`` as ``jobs`` payloads that each fit a line of the link (``link.MAX_LINE``): one accept commit can
    hand over thousands of long messages, more than one line may hold, and a line too long would break the link."""
    return _lines([_wire(j) for j in jobs])


def _lines(values: list[tuple[Any, ...]]) -> list[str]:
    payload = base64.b64encode(pickle.dumps(values, protocol=pickle.HIGHEST_PROTOCOL)).decode()
    if len(payload) < link.MAX_LINE // 2 or len(values) == 1:
        return [payload]
    half = len(values) // 2
    return _lines(values[:half]) + _lines(values[half:])


# -- the accept process's side: starting, watching and stopping the delivery process --------------------------------
class Delivery:
    """The child process and the line to it, restarted when it dies (see the module's docstring)."""

    def __init__(self, rt: runtime.Runtime, log_level: str) -> None:
        self._rt = rt
        self._log_level = log_level
        self._ctx = multiprocessing.get_context("spawn")
        self.proc: Any = None
        self.line: link.Link | None = None
        self._reading: asyncio.Task[None] | None = None
        self.failed = asyncio.Event()  # it died too soon after its start: the node stops
        self.restarts = 0
        self._closing = False
        self._started = 0.0

    async def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.line = link.Link(ours)
        wire_accept(self._rt, self.line)
        ready: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def on_ready(node: str) -> None:
            if not ready.done():
                ready.set_result(node)

        self.line.on("ready", on_ready)
        await self.line.open()
        settings = self._rt.settings
        self.proc = self._ctx.Process(
            target=delivery_main,
            args=(settings, theirs, self._log_level, settings.log_format, os.getpid()),
            name="smsgate-delivery",
            daemon=False,
        )
        self.proc.start()
        theirs.close()
        self._reading = asyncio.create_task(self.line.run(), name="link")
        started = asyncio.get_running_loop().time()
        gone: asyncio.Future[Any] = asyncio.ensure_future(self.line.closed.wait())
        await asyncio.wait({ready, gone}, timeout=READY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        gone.cancel()
        if not ready.done():
            await self._reap()
            raise RuntimeError(f"the delivery process did not start (exit status {self.proc.exitcode})")
        log.info("delivery process %s started (pid %d)", ready.result(), self.proc.pid)
        self._hand_over(ready.result(), self.line)
        self._rt.tell("wake", "")  # what was accepted while no delivery process ran
        self._started = started

    def _hand_over(self, node: str, line: link.Link) -> None:
        """From now on a message accepted while the delivery process has room is claimed for it in the accept
        transaction and handed over in memory after the commit (the single process's fast path, across the line):
        no claim and no read in the delivery process. Should it die first, its claims come back with its heartbeat."""
        rt, status = self._rt, self._rt.remote
        assert status is not None
        rt.writes.node_id = node

        def room() -> bool:
            return not line.closed.is_set() and status.backlog + status.handed < HANDOVER_LIMIT

        def hand_over(jobs: list[dispatch_jobs.Job]) -> None:
            status.handed += len(jobs)
            for payload in _job_lines(jobs):
                line.send("jobs", payload)

        rt.remote_room, rt.hand_over = room, hand_over

    async def watch(self) -> None:
        """Restart the delivery process whenever it dies, until ``close``; set ``failed`` on a crash loop."""
        while not self._closing:
            assert self.line is not None
            await self.line.closed.wait()
            if self._closing:
                return
            self._rt.remote_room, self._rt.hand_over = lambda: False, None
            await self._reap()
            code = self.proc.exitcode
            if self._rt.remote is not None:
                self._rt.remote.forget()
            lived = asyncio.get_running_loop().time() - self._started
            if lived < CRASH_LOOP:
                log.critical("the delivery process exited with %s %.1f s after its start; stopping", code, lived)
                self.failed.set()
                return
            self.restarts += 1
            log.error("the delivery process exited with %s; starting another", code)
            try:
                await self.start()
            except Exception as exc:
                log.critical("could not restart the delivery process (%s); stopping", exc)
                self.failed.set()
                return

    async def _reap(self, grace: float = 5.0) -> None:
        await asyncio.to_thread(self.proc.join, grace)
        if self.proc.is_alive():
            self.proc.kill()
            await asyncio.to_thread(self.proc.join, 5)
        if self._reading is not None:
            self._reading.cancel()
        if self.line is not None:
            await self.line.close()

    async def close(self) -> None:
        """SIGTERM, wait for it to finish its batches and give its claims back, then SIGKILL if it would not."""
        self._closing = True
        if self.proc is None:
            return
        if self.proc.is_alive():
            self.proc.terminate()
        await self._reap(STOP_GRACE)
