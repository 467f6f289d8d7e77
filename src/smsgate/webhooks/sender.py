"""The delivery loop: claims ``webhook`` outbox jobs, sends them, and records every attempt.

* Durable: a job is a row in ``outbox``; it is claimed as a lease (``store.outbox``), so the jobs of a node that
  was SIGKILLed are taken back by the next one (or by itself after a restart).
* 2xx is done; any other answer, a timeout, a refused or dropped connection is retried with exponential backoff
  and jitter until ``retry_window`` seconds after the job was queued, with a last try at the deadline (or, for a
  delivery with its own ``retry_delays`` such as KPN batch receipts, once after each of those delays); after
  that the delivery is ``dead`` (shown by ``GET /v1/webhooks/deliveries``, replayable).
* One slow receiver cannot starve the others: at most ``per_target`` deliveries run per host:port, and a claimed
  job whose target is full is put back for a moment instead of holding a slot.
* One account cannot starve the others: jobs are claimed round-robin across accounts, and at most ``per_account``
  of one account's deliveries run at once on a node (``Outbox.claim_fair``), so an account with many slow or
  hostile receivers only slows its own webhooks.
* The target is resolved and every address checked at each try (``targets.resolve``); the connection goes to
  the checked address, with ``Host`` and TLS SNI set to the name, and redirects are never followed.

Outcomes are written through the group committer (kind ``webhook_results``), as the dispatcher does.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import random
import time
from typing import Any

import cachetools
import httpx

from smsgate import errors
from smsgate.core import backoff, signing
from smsgate.core import deliveries as core_deliveries
from smsgate.store import committer as store_committer
from smsgate.store import outbox as store_outbox
from smsgate.store import webhooks as store_webhooks
from smsgate.webhooks import targets

log = logging.getLogger(__name__)
USER_AGENT = "smsgate-webhooks/0.1"
MAX_CLIENTS = 256


class HostOnlyUrls(logging.Filter):
    """httpx logs each request's full URL at INFO; a webhook URL may carry a secret (``?token=``) and a GET webhook
    the message text in its query, so only scheme, host and port are left of any URL it logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(
                f"{a.scheme}://{a.host}:{a.port or ''}/..." if isinstance(a, httpx.URL) else a for a in record.args
            )
        return True


def quiet_httpx() -> None:
    """Install ``HostOnlyUrls`` on httpx's logger (once): it is the only library logging our outbound URLs."""
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, HostOnlyUrls) for f in logger.filters):
        logger.addFilter(HostOnlyUrls())


@dataclasses.dataclass(frozen=True, slots=True)
class SenderSettings:
    timeout: float = 10.0  # one attempt, connect to last byte of the response head
    retry_base: float = 10.0  # first retry after about this many seconds, doubling each time
    retry_max_delay: float = 3600.0
    retry_window: float = 24 * 3600.0  # give up this long after the job was queued
    concurrency: int = 64
    per_target: int = 4
    per_account: int = 8
    allow_private: bool = False
    poll_interval: float = 1.0
    defer_delay: float = 0.25  # a job whose target is busy waits this long before it is claimed again


Outcome = core_deliveries.Outcome


class Sender:
    def __init__(
        self,
        *,
        deliveries: store_webhooks.Deliveries,
        committer: store_committer.GroupCommitter,
        outbox: store_outbox.Outbox,
        settings: SenderSettings,
    ) -> None:
        self._deliveries = deliveries
        self._committer = committer
        self._outbox = outbox
        self.settings = settings
        self._wake = asyncio.Event()
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._unstarted: list[tuple[str, int]] = []  # claimed, but loading them failed (the store was away)
        # a claim failed: it may have committed all the same (its answer lost with the connection), leaving jobs
        # leased to this node that it does not know of; they are given back before the next claim
        self._claim_failed = False
        self._per_target: collections.Counter[str] = collections.Counter()
        self._per_account: collections.Counter[str] = collections.Counter()
        self._clients = _Clients(MAX_CLIENTS)
        self._tasks: list[asyncio.Task[None]] = []
        self.delivered = 0
        committer.register("webhook_results", store_webhooks.record, lazy=True)
        quiet_httpx()

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._loop(), name="webhooks-claim"))
        self._tasks.append(asyncio.create_task(self._lease_loop(), name="webhooks-lease"))

    async def close(self, grace: float = 2.0) -> None:
        """Stop claiming; give running deliveries ``grace`` seconds, then cancel them (their jobs stay queued)."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks.clear()
        running = list(self._inflight.values())
        if running:
            _done, pending = await asyncio.wait(running, timeout=grace)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()
        self._clients.clear()

    # -- loops ------------------------------------------------------------------------------------------------
    async def _loop(self) -> None:
        while True:
            self._wake.clear()  # before the claim: a delivery that ends during it wakes the next round
            try:
                if self._claim_failed:
                    held = [*self._inflight, *(ref for ref, _ in self._unstarted)]
                    await self._outbox.release_unheld("webhook", held)
                    self._claim_failed = False
                free = self.settings.concurrency - len(self._inflight)
                if free > 0:
                    fresh = await self._outbox.claim_fair(
                        "webhook", free, per_account=self.settings.per_account, busy=dict(self._per_account)
                    )
                    claimed = self._unstarted + [c for c in fresh if c[0] not in self._inflight]
                    self._unstarted = []
                    if claimed:
                        try:
                            await self._start(claimed)
                        except Exception:
                            # claimed but not started: try them again rather than wait out the lease
                            self._unstarted = [c for c in claimed if c[0] not in self._inflight]
                            raise
            except Exception:
                self._claim_failed = True
                log.exception("webhook claim failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval)

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(max(self._outbox.lease / 3, 0.5))
            with contextlib.suppress(Exception):
                await self._outbox.extend("webhook", [*self._inflight, *(ref for ref, _ in self._unstarted)])

    async def _start(self, claimed: list[tuple[str, int]]) -> None:
        rows = await self._deliveries.load([ref for ref, _ in claimed])
        now = time.time()
        put_back: list[Outcome] = []
        for ref, attempts in claimed:
            row = rows.get(ref)
            if row is None or row["status"] in ("delivered", "dead"):
                put_back.append(Outcome(ref, now, "pending"))  # nothing to do: drop the job
                continue
            try:
                key = targets.parse(row["url"]).key
            except errors.InvalidUrl as exc:
                put_back.append(Outcome(ref, now, "dead", error=str(exc)))
                continue
            if self._per_target[key] >= self.settings.per_target:
                delay = self.settings.defer_delay * (1 + random.random())
                put_back.append(Outcome(ref, now, "pending", retry_at=now + delay))
                continue
            self._per_target[key] += 1
            self._per_account[row["account_id"]] += 1
            task = asyncio.create_task(self._deliver(row, attempts, key), name=f"webhook-{ref}")
            self._inflight[ref] = task
        if put_back:
            await self._committer.write_until_stored("webhook_results", put_back)

    # -- one delivery -----------------------------------------------------------------------------------------
    async def _deliver(self, row: dict[str, Any], attempts: int, key: str) -> None:
        try:
            outcome = await self._attempt(row, attempts + 1)
            # the delivery id, receiver and outcome only: its URL may hold a token, its body the message text
            log.info("webhook %s to %s: %s", row["id"], key, outcome.status_code or outcome.error or outcome.status)
            # shielded: a shutdown in the middle still records what the receiver saw; retried while the store is
            # away (the job stays in flight, so its lease is renewed), or the receiver would get it again
            await asyncio.shield(self._committer.write_until_stored("webhook_results", [outcome]))
            if outcome.status == "delivered":
                self.delivered += 1
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook %s: could not record the attempt", row["id"])
        finally:
            for counter, held in ((self._per_target, key), (self._per_account, row["account_id"])):
                counter[held] -= 1
                if counter[held] <= 0:
                    del counter[held]
            self._inflight.pop(row["id"], None)
            self.wake()

    async def _attempt(self, row: dict[str, Any], attempt: int) -> Outcome:
        s = self.settings
        started = time.time()
        t0 = time.monotonic()
        code: int | None = None
        error: str | None = None
        try:
            target = targets.parse(row["url"])
            addresses = await targets.resolve(target, allow_private=s.allow_private, dns_timeout=s.timeout)
            code = await self._send(row, target, addresses)
        except targets.TargetRefused as exc:
            return Outcome(row["id"], started, "dead", error=str(exc))
        except errors.InvalidUrl as exc:
            return Outcome(row["id"], started, "dead", error=str(exc))
        except (httpx.TimeoutException, TimeoutError):
            error = f"timed out after {s.timeout:g}s"
        except httpx.ConnectError as exc:
            error = f"connection failed: {exc}" if str(exc) else "connection failed"
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            error = f"connection closed: {exc}" if str(exc) else "connection closed by the receiver"
        except (httpx.HTTPError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        latency = round((time.monotonic() - t0) * 1000, 1)
        now = time.time()
        if code is not None and 200 <= code < 300:
            return Outcome(row["id"], started, "delivered", code, latency)
        if code is not None:
            error = f"HTTP {code}" + (" (redirects are not followed)" if 300 <= code < 400 else "")
        schedule = row.get("retry_delays")
        if schedule:  # the delivery's own schedule (KPN batch receipts): a try after each delay, then dead
            delays = [float(d) for d in str(schedule).split(",")]
            if attempt > len(delays):
                return Outcome(row["id"], started, "dead", code, latency, error)
            return Outcome(row["id"], started, "retrying", code, latency, error, now + delays[attempt - 1])
        deadline = float(row["queued_at"]) + s.retry_window
        if now >= deadline:
            return Outcome(row["id"], started, "dead", code, latency, error)
        wait = backoff.delay(attempt - 1, base=s.retry_base, cap=s.retry_max_delay, jitter=backoff.EQUAL)
        retry_at = min(now + wait, deadline)
        return Outcome(row["id"], started, "retrying", code, latency, error, retry_at)

    async def _send(self, row: dict[str, Any], target: targets.Target, addresses: list[str]) -> int:
        body = str(row["body"]).encode()
        headers = {"user-agent": USER_AGENT, "host": target.host_header, "x-smsgate-delivery": row["id"]}
        path = target.path
        content: bytes | None = None
        if row["method"] == "GET":
            path += ("&" if "?" in path else "?") + row["body"]
        else:
            content = body
            headers["content-type"] = row["content_type"]
            if str(row["event"]).startswith("message.") and row["content_type"] == "application/json":
                secret = row.get("signature_secret")
                if secret:
                    headers["x-smsgate-signature"] = signing.event_signature(secret, int(time.time()), body)
        client = self._client(target.key)
        last: Exception | None = None
        for addr in addresses:
            host = f"[{addr}]" if ":" in addr else addr
            request = client.build_request(
                row["method"],
                f"{target.scheme}://{host}:{target.port}{path}",
                headers=headers,
                content=content,
                extensions={"sni_hostname": target.host} if target.scheme == "https" else {},
            )
            try:
                response = await asyncio.wait_for(client.send(request, stream=True), self.settings.timeout + 1)
            except httpx.ConnectError as exc:  # try the next checked address
                last = exc
                continue
            await response.aclose()  # the receiver's body is not needed
            return response.status_code
        assert last is not None
        raise last

    def _client(self, key: str) -> httpx.AsyncClient:
        """One pool per target, so a TLS connection made for one name is never reused for another."""
        client = self._clients.get(key)
        if client is not None:
            return client
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.settings.timeout),
            limits=httpx.Limits(
                max_connections=self.settings.per_target, max_keepalive_connections=self.settings.per_target
            ),
            follow_redirects=False,
            trust_env=False,  # never through an environment proxy: the address check would be moot
        )
        self._clients[key] = client
        return client


class _Clients(cachetools.LRUCache[str, httpx.AsyncClient]):
    """At most ``maxsize`` clients, one per target; the least recently used is closed when another is needed."""

    def popitem(self) -> tuple[str, httpx.AsyncClient]:
        key, old = super().popitem()
        task = asyncio.create_task(old.aclose(), name="webhooks-close-client")
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
        return key, old
