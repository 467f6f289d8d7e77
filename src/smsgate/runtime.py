"""Composition root: builds every object from ``Settings``, wires them, and runs the background loops.

The only module (with ``cli``) that sees Settings and concrete connector classes. It is also where the layers meet
without importing each other: the dispatcher hears of committed messages (``Recorder.on_accepted``) and the webhook
sender of planned deliveries (``Recorder.on_deliveries``) through callbacks set here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

from smsgate import changes, limits, link, owners, pausing, startup
from smsgate.connectors import base, registry, sandbox
from smsgate.connectors import http as http_connectors
from smsgate.core import handsets, pricing, routing
from smsgate.dispatch import dispatcher as dispatch
from smsgate.dispatch import jobs as dispatch_jobs
from smsgate.dispatch import throttle as dispatch_throttle
from smsgate.services import demo as services_demo
from smsgate.services import idempotency as services_idempotency
from smsgate.services import numbers as services_numbers
from smsgate.services import optout as services_optout
from smsgate.services import recording, sending
from smsgate.services import retention as services_retention
from smsgate.services import sandbox as sandbox_control
from smsgate.services import suppressions as services_suppressions
from smsgate.services import webhooks as services_webhooks
from smsgate.settings import Settings
from smsgate.store import accounts as store_accounts
from smsgate.store import batches as store_batches
from smsgate.store import checkpoint as store_checkpoint
from smsgate.store import committer as store_committer
from smsgate.store import connectors as store_connectors
from smsgate.store import console as store_console
from smsgate.store import engine as store_engine
from smsgate.store import idempotency as store_idempotency
from smsgate.store import messages as store_messages
from smsgate.store import migrate, notify
from smsgate.store import numbers as store_numbers
from smsgate.store import outbox as store_outbox
from smsgate.store import ownership as store_ownership
from smsgate.store import reads as store_reads
from smsgate.store import retention as store_retention
from smsgate.store import sandbox as store_sandbox
from smsgate.store import suppressions as store_suppressions
from smsgate.store import webhooks as store_webhooks
from smsgate.webhooks import sender as webhook_sender

log = logging.getLogger(__name__)

# what a process of this node does: everything (one process), or one half of ``serve --processes 2`` (``split``)
ALL, ACCEPT, DELIVERY = "all", "accept", "delivery"


def build_connectors(settings: Settings) -> dict[str, base.Connector]:
    """Connectors from the ``[[connectors]]`` tables (each type from ``connectors.registry``); the sandbox
    network when there are none. The tables were checked when the settings were read (``configfile``)."""
    defaults = registry.Defaults(
        sandbox_receipt_delay=settings.sandbox_receipt_delay,
        sandbox_slow_receipt_delay=settings.sandbox_slow_receipt_delay,
        public_url=public_url(settings),
    )
    out: dict[str, base.Connector] = {}
    for table in settings.connectors:
        connector = registry.build(table, defaults)
        if connector.name in out:
            raise ValueError(f"each connector needs a unique name (got {connector.name!r})")
        out[connector.name] = connector
    if settings.public_url is None and any(isinstance(c, http_connectors.HttpConnector) for c in out.values()):
        log.warning(
            "SMSGATE_PUBLIC_URL is not set: HTTP upstreams are told to call back %s/connectors/...; set it to the "
            "address they can reach",
            public_url(settings),
        )
    if not out:
        out["sandbox"] = registry.build({"type": "sandbox", "name": "sandbox"}, defaults)
    return out


def public_url(settings: Settings) -> str:
    """Where upstreams reach this gateway (receipt and inbound receivers): ``SMSGATE_PUBLIC_URL``, else host:port."""
    return (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


class Runtime:
    """Everything one gateway node runs; ``async with Runtime(settings)`` starts and stops it."""

    def __init__(self, settings: Settings, *, role: str = ALL) -> None:
        self.settings = settings
        self.role = role
        # a notice to the other process of a split node (``link``); nothing to tell in one process
        self.tell: Callable[[str, str], None] = lambda _kind, _payload: None
        # a split node's accept process: whether the delivery process takes more jobs in memory, and handing them
        # over (``split.Handover``); without one every message waits in the outbox for the delivery process's claim
        self.remote_room: Callable[[], bool] = lambda: False
        self.hand_over: Callable[[list[dispatch_jobs.Job]], None] | None = None
        self.node_id = "node_" + secrets.token_hex(6)
        self.engine = store_engine.create(
            settings.effective_database_url, sqlite_synchronous=settings.sqlite_synchronous
        )
        self.committer = store_committer.GroupCommitter(
            self.engine,
            two_lanes=self.engine.dialect.name == "postgresql",
            sync_engine=store_engine.create_sync_writer(
                settings.effective_database_url,
                sqlite_synchronous=settings.sqlite_synchronous,
                autocheckpoint=store_checkpoint.BACKSTOP_PAGES,
            ),
        )
        # SQLite: the WAL is checkpointed by a thread, not inside the loop's commits (store.checkpoint)
        db_file = store_engine.sqlite_path(self.engine.url.render_as_string())
        self.checkpointer = (
            store_checkpoint.Checkpointer(str(db_file)) if db_file is not None and role != DELIVERY else None
        )
        self.writes = store_messages.MessageWrites(node_id=self.node_id, lease=settings.claim_lease_seconds)
        self.recorder = recording.Recorder(
            self.writes,
            reassembly_timeout=settings.inbound_reassembly_timeout,
            kpn_retry_delays=settings.kpn_webhook_retry_delays,
            keys_kept=settings.idempotency_hours * 3600.0,
        )
        self.recorder.register(self.committer)
        self.outbox = store_outbox.Outbox(
            self.engine,
            node_id=self.node_id,
            lease=settings.claim_lease_seconds,
            dead_after=settings.node_dead_after,
        )
        self.webhooks = webhook_sender.Sender(
            deliveries=store_webhooks.Deliveries(self.engine),
            committer=self.committer,
            outbox=self.outbox,
            settings=webhook_sender.SenderSettings(
                timeout=settings.webhook_timeout,
                retry_base=settings.webhook_retry_base,
                retry_max_delay=settings.webhook_retry_max_delay,
                retry_window=settings.webhook_retry_hours * 3600.0,
                concurrency=settings.webhook_concurrency,
                per_target=settings.webhook_per_target_concurrency,
                per_account=settings.webhook_per_account_concurrency,
                allow_private=settings.webhooks_allow_private,
                poll_interval=max(settings.poll_interval, 0.1),
            ),
        )
        self.recorder.on_deliveries.append(self.wake_webhooks)  # deliveries were planned: no waiting for a poll
        self.connectors = build_connectors(settings)
        self.router = routing.Router.from_mapping(settings.routing, fallback=next(iter(self.connectors)))
        missing = self.router.connectors() - set(self.connectors)
        if missing:
            raise ValueError(f"routing names unknown connectors: {sorted(missing)}")
        self.reads = store_reads.MessageReads(self.engine)
        self.batches = store_batches.BatchReads(self.engine)
        # one node: limits in this process; several nodes: shared through Redis (atomic Lua scripts)
        self.redis: Any = limits.redis_client(settings.redis_url) if settings.redis_url else None
        quotas: limits.QuotaLimiter
        buckets: limits.RateLimiter
        if self.redis is not None:
            quotas = limits.RedisQuotas(self.redis, self.reads.count_since, prefix=settings.redis_prefix)
            buckets = limits.RedisTokenBuckets(self.redis, prefix=settings.redis_prefix)
        else:
            quotas, buckets = limits.Quotas(self.reads.count_since), limits.TokenBuckets()
        # who may log in, and which signed requests were seen: per process, or shared through Redis
        self.login_failures: limits.FailureLimiter
        self.signatures: limits.Remembered
        if self.redis is not None:
            self.login_failures = limits.RedisFailures(
                self.redis, settings.auth_failure_limit, settings.auth_failure_window, prefix=settings.redis_prefix
            )
            self.signatures = limits.RedisSeenOnce(self.redis, prefix=settings.redis_prefix)
        else:
            self.login_failures = limits.Failures(settings.auth_failure_limit, settings.auth_failure_window)
            self.signatures = limits.SeenOnce()
        self.changes = changes.Changes(self.redis, prefix=settings.redis_prefix)
        caps = dispatch_throttle.caps_from_tables(settings.connectors)
        throttle = dispatch_throttle.SharedThrottle(buckets, caps) if self.redis is not None and caps else None
        self.dispatcher = dispatch.Dispatcher(
            throttle=throttle,
            reads=self.reads,
            committer=self.committer,
            outbox=self.outbox,
            connectors=self.connectors,
            router=self.router,
            batch_size=settings.batch_size,
            poll_interval=settings.poll_interval,
            fence=self.engine.dialect.name == "postgresql",  # several nodes may share it: fence the claims
            caps=caps,
        )
        self.accounts = store_accounts.AccountStore(self.engine)
        # a split node's accept process knows its connectors' states from the delivery process's reports
        self.remote = link.Status() if role == ACCEPT else None
        # the dispatcher takes what this node accepts straight from the accept commit (its fast path)
        self.recorder.on_accepted.append(self._dispatch_accepted)
        self.gateway = sending.Gateway(
            accounts=self.accounts,
            reads=self.reads,
            committer=self.committer,
            has_room=self.dispatcher.has_room if role != ACCEPT else lambda: self.remote_room(),
            connectors=self.remote.routes(list(self.connectors)) if self.remote is not None else self.connectors,
            router=self.router,
            prices=pricing.PriceTable.from_mapping(settings.prices) if settings.prices else pricing.DEFAULT_PRICES,
            ported=settings.ported_numbers,
            token_ttl=settings.token_ttl_seconds,
            retry_max_seconds=settings.submit_retry_max_seconds,
            node_id=self.node_id,
            quotas=quotas,
            buckets=buckets,
            policy=limits.Policy(
                sender_tps=settings.sender_tps,
                destination_tps=settings.destination_tps,
                burst_seconds=settings.burst_seconds,
            ),
            changes_bus=self.changes,
            cache_seconds=settings.cache_seconds,
            owners=owners.Owners(store_ownership.Ownership(self.engine), cache_seconds=settings.cache_seconds),
            suppressions=services_suppressions.Suppressions(store_suppressions.SuppressionStore(self.engine)),
            sandboxes=tuple(n for n, c in self.connectors.items() if isinstance(c, sandbox.SandboxNetwork)),
            default_sender=settings.default_sender,
        )
        # a STOP / START keyword: every process forgets the list, and the account's confirmation goes out
        self.optout = services_optout.FollowUp(self.gateway)
        self.recorder.on_optout.append(self.optout)
        self.recorder.confirmation = self.optout.confirmation  # stored in the keyword's transaction
        self.webhook_service = services_webhooks.Webhooks(
            store_webhooks.Deliveries(self.engine),
            self.gateway,
            allow_private=settings.webhooks_allow_private,
            wake=self.wake_webhooks,
        )
        self.numbers = services_numbers.Numbers(
            store_numbers.NumberStore(self.engine), self.gateway, allow_private=settings.webhooks_allow_private
        )
        self.idempotency = services_idempotency.Idempotency(
            store_idempotency.IdempotencyStore(self.engine), kept_seconds=settings.idempotency_hours * 3600.0
        )
        self.live = store_console.Live(self.engine)
        self.listener = (
            notify.Listener(
                settings.effective_database_url,
                {notify.CHANNEL: lambda _payload: self.dispatcher.wake(), notify.CHANGES: self.changes.deliver},
            )
            if self.engine.dialect.name == "postgresql"
            else None
        )
        self.ingest = recording.Ingest(self.committer)
        self.sandbox_control = sandbox_control.SandboxControl(
            store=store_sandbox.SandboxStore(self.engine),
            networks=[c for c in self.connectors.values() if isinstance(c, sandbox.SandboxNetwork)],
            owners=self.gateway.owners,
            otp_pattern=handsets.compile_pattern(settings.sandbox_otp_pattern, "SMSGATE_SANDBOX_OTP_PATTERN"),
            waits_per_account=settings.sandbox_waits_per_account,
            # several nodes may submit an account's messages: a waiter also looks now and then (sandbox_control)
            recheck=sandbox_control.REMOTE_RECHECK
            if self.engine.dialect.name == "postgresql" or role == ACCEPT
            else None,
        )
        self.sandbox_control.watch(self.committer, self.changes)
        self.committer.register("ready", self._ready_write)
        self.retention = services_retention.Retention(
            store_retention.Limits(self.engine),
            self.committer,
            days=settings.retention_days,
            content_days=settings.content_retention_days,
            batch=settings.retention_batch,
        )
        self._ready_check: asyncio.Future[None] | None = None
        self.stopping = False  # set on SIGTERM/SIGINT: /readyz answers 503 while the node drains
        self.pausing = pausing.Pauses(
            store_connectors.PauseStore(self.engine),
            self.connectors,
            self.dispatcher,
            lambda kind, payload: self.tell(kind, payload),
            self.remote,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self.demo: dict[str, Any] | None = None

    def _dispatch_accepted(self, items: Sequence[store_messages.NewMessage]) -> None:
        """What this node claimed in the accept commit goes straight to the dispatcher; a message left in the outbox
        (scheduled, or no room in memory) wakes it, so it looks again when that job comes due, not a poll later.
        The accept process of a split node claims nothing: the delivery process is told to look."""
        if self.role == ACCEPT:
            claimed = [i for i in items if i.claim]
            if claimed and self.hand_over is not None:
                self.hand_over([dispatch_jobs.job_from(i.message, i.parts) for i in claimed])
            if len(claimed) < len(items):
                self.tell("wake", "")
            return
        self.dispatcher.enqueue([dispatch_jobs.job_from(i.message, i.parts) for i in items if i.claim])
        if not all(i.claim for i in items):
            self.dispatcher.wake()

    def wake_webhooks(self) -> None:
        """Deliveries were planned: the sender looks now (in the delivery process when the node is split)."""
        if self.role == ACCEPT:
            self.tell("webhooks", "")
        else:
            self.webhooks.wake()

    def sandbox_switched(self, up: bool) -> None:
        """The operator took the sandbox network down or brought it back (``sbx.up`` set already)."""
        self.tell("sandbox-up", "1" if up else "0")
        if up:
            self.dispatcher.wake()

    def connector_state(self, name: str) -> tuple[base.ConnectorHealth, bool, int, dict[str, int]]:
        """A connector's health, availability, queued messages and part counts, wherever it runs."""
        c = self.connectors[name]
        if self.remote is None or c.paused:
            return c.health(), c.available, self.dispatcher.queued(name), dict(self.dispatcher.counts.get(name, {}))
        r = self.remote
        return r.health(name), r.available(name), r.queued(name), r.parts(name)

    def counters(self) -> dict[str, int]:
        """What ``/metrics`` counts, summed over both processes of a split node."""
        own = {
            "submitted": self.dispatcher.submitted,
            "receipts": self.ingest.receipt_count,
            "inbound": self.ingest.inbound_count,
            "backlog": self.dispatcher.backlog,
            "commits": self.committer.batches,
            "commit_items": self.committer.items,
            "webhooks_delivered": self.webhooks.delivered,
        }
        for k, v in (self.remote.counters if self.remote is not None else {}).items():
            own[k] = own.get(k, 0) + v
        return own

    @property
    def sandbox(self) -> sandbox.SandboxNetwork | None:
        for c in self.connectors.values():
            if isinstance(c, sandbox.SandboxNetwork):
                return c
        return None

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        startup.check_data_dir(self.settings)
        store_engine.prepare_sqlite(self.settings.effective_database_url)
        if self.role != DELIVERY:  # the accept process has migrated the file before the delivery process starts
            try:
                await migrate.upgrade(self.engine)
            except Exception as exc:  # down, missing, refusing us: one line naming it (startup.explain)
                raise startup.database_error(self.settings, exc) from exc
        self.committer.start()
        if self.checkpointer is not None:
            self.checkpointer.start()
        await self.outbox.heartbeat({"started": time.time(), "role": self.role})
        for c in self.connectors.values():
            # the accept process submits nothing: only what answers its HTTP (upstream callbacks, handset replies)
            if self.role != ACCEPT or isinstance(c, base.Receiver | sandbox.SandboxNetwork):
                await c.start(self.ingest)
        await self.pausing.sync()
        await self.sandbox_control.start()
        self._spawn(self._heartbeat_loop(), "heartbeat")
        if self.role != ACCEPT:
            await self._resume_sandbox()
            self.dispatcher.start()
            self.webhooks.start()
            self._spawn(self._sweep_loop(), "sweeper")
            self._spawn(self.retention.run(self.settings.retention_interval), "retention")
        if self.listener is not None:
            self._spawn(self.listener.run(), "listen")
        if self.redis is not None:
            self._spawn(self.changes.run(), "changes")
        if self.role == DELIVERY:
            return
        if self.settings.sandbox and self.sandbox_only:
            self.demo = await services_demo.ensure_account(self.accounts, self.settings.host)
        await services_demo.warn(self.accounts)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await self.sandbox_control.close()
        await self.optout.close()
        await self.dispatcher.close()
        await self.webhooks.close()
        for c in self.connectors.values():
            with contextlib.suppress(Exception):
                await c.close()
        await self.committer.close()
        with contextlib.suppress(Exception):
            await self.outbox.leave()
        if self.checkpointer is not None:
            await asyncio.to_thread(self.checkpointer.stop)
        await self.engine.dispose()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()

    async def readiness(self) -> dict[str, Any]:
        """What ``/readyz`` reports: ready means this node can accept a message durably now, i.e. the
        database takes a write (through the group committer, the way sends are written) within
        ``ready_timeout``. Connector states are reported beside it, and do not decide it: a message accepted
        while its connector is down waits in the outbox and goes out when it is back (see README, Health)."""
        database: dict[str, Any] = {"ok": True}
        started = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.shield(self._shared_ready_write()), self.settings.ready_timeout)
            database["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
        except TimeoutError:
            database = {"ok": False, "error": f"no answer to a write within {self.settings.ready_timeout:g} s"}
        except Exception as exc:
            database = {"ok": False, "error": startup.database_error(self.settings, exc).line}
        connectors = {}
        for name in self.connectors:
            health = self.connector_state(name)[0]
            connectors[name] = {"state": health.state.value, "detail": health.detail}
        ready = database["ok"] and not self.stopping
        return {
            "status": "ready" if ready else ("stopping" if self.stopping else "not ready"),
            "ready": ready,
            "node": self.node_id,
            "database": database,
            "connectors": connectors,
        }

    def _shared_ready_write(self) -> asyncio.Future[None]:
        """One write in flight at a time, however many probes ask at once."""
        if self._ready_check is None or self._ready_check.done():
            self._ready_check = asyncio.ensure_future(self.committer.write("ready", None))
        return self._ready_check

    async def _ready_write(self, tx: Any, items: Sequence[None]) -> list[None]:
        await store_outbox.touch(tx, self.node_id)
        return [None] * len(items)

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.append(asyncio.create_task(self._supervised(coro, name), name=name))

    @staticmethod
    async def _supervised(coro: Any, name: str) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:  # a dead side task must be loud
            log.critical("background task %s died", name, exc_info=True)
            raise

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.node_heartbeat_interval)
            try:
                await self.outbox.heartbeat()
                await self.pausing.sync()  # pauses another node's operator API recorded
            except Exception as exc:
                log.warning("heartbeat failed: %s", exc)

    async def _sweep_loop(self) -> None:
        """Held receipts whose part appeared meanwhile, and inbound fragments that waited too long."""
        while True:
            await asyncio.sleep(2.0)
            try:
                await self.committer.write("sweep", None)
            except Exception as exc:
                log.warning("sweep failed: %s", exc)

    async def _resume_sandbox(self) -> None:
        """Receipts the sandbox owed when the process stopped."""
        for name, c in self.connectors.items():
            if not isinstance(c, sandbox.SandboxNetwork):
                continue
            rows = await self.reads.awaiting_receipts(name)
            c.resume(rows)

    @property
    def sandbox_only(self) -> bool:
        """Whether every connector is a sandbox network: nothing this gateway sends can reach a real phone."""
        return all(isinstance(c, sandbox.SandboxNetwork) for c in self.connectors.values())
