"""What every HTTP upstream connector shares: the client, pacing, retries, the circuit breaker, the receiver.

An upstream type (``kpn``, ``vonage``, ``kaarai``, ``http``) only says how one message becomes a request and
what the answer means (``exchange`` → ``http_answers.Answer`` per message or per upstream part), and how its callbacks read
(``receipts_from``, ``inbound_from``). Everything else is here, once:

* **Parts back into messages.** HTTP APIs take text and split it themselves, so the parts of one message in a
  batch are joined back (their payloads decoded) and sent as one request; binary parts go one by one to an
  upstream that takes binary (Vonage), and are refused by the others.
* **What an answer means** (``http_answers.Verdict``)::

      ACCEPTED   the upstream took it; its id goes on the part (receipts match on connector + id)
      REJECTED   refused for good (bad number, barred...): the part is rejected, or rerouted if the rule says so
      RETRY      not done, try later (5xx, no connection): counts as a failure for the circuit
      THROTTLED  too fast (429, Vonage 1): the connector rests for Retry-After; not a failure
      UNHEALTHY  our credentials or configuration are refused: the circuit opens at once, the operator is told
      UNKNOWN    the request went out and no readable answer came back: it may have been sent

* **Retries.** A request that certainly did not go out is tried again here, ``retries`` times with doubling
  backoff (or the upstream's Retry-After), then handed back to the dispatcher as RETRY, which offers it to the
  route's next connector or puts it back in the outbox. An UNKNOWN one is tried again only with
  ``retry_on_timeout`` (or an idempotency key), and only here: it is never offered to another connector; when
  the tries run out the part is recorded as submitted, with the doubt in its event.
* **Circuit breaker** (``circuit.Circuit``): open → not ``available``; half-open → one probe at a time, the
  other requests wait for its result.

Which failures are "certainly not sent": no connection, a write that failed, and one more that httpx alone cannot
tell: a kept-alive connection the upstream closed or reset before answering anything. Servers close idle
connections when they restart or time them out, and a request written at that moment is dropped unread; a trace
of the request (``_Wire``) shows whether the connection was reused and whether any answer began.
"""

from __future__ import annotations

import abc
import asyncio
import contextvars
import dataclasses
import logging
import math
import random
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any, ClassVar

import httpx

from smsgate import errors
from smsgate.connectors import base
from smsgate.connectors.http import answers as http_answers
from smsgate.connectors.http import circuit as http_circuit
from smsgate.connectors.http.settings import HttpSettings
from smsgate.core import backoff, rates

log = logging.getLogger(__name__)
UP_TO_A_FIFTH = (1.0, 1.2)  # a retry waits what the upstream asked or the backoff, plus up to 20 %
# request latency buckets (seconds) for /metrics
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# httpx errors raised before the request left: safe to send again, here or through another connector
_UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.WriteError, httpx.WriteTimeout)
# the connection closed or reset under a request: unsent if it was a reused connection and no answer had begun
_DROPPED = (httpx.ReadError, httpx.RemoteProtocolError)


class _Wire:
    """What httpcore's trace says about the latest request of one attempt: a new connection, an answer begun."""

    def __init__(self) -> None:
        self.fresh = False
        self.answered = False

    async def trace(self, event: str, info: dict[str, Any]) -> None:
        if event.endswith("connect_tcp.complete"):
            self.fresh = True
        elif event.endswith("receive_response_headers.complete"):
            self.answered = True

    @property
    def dropped_unread(self) -> bool:
        return not self.fresh and not self.answered


_WIRE: contextvars.ContextVar[_Wire | None] = contextvars.ContextVar("smsgate_http_wire", default=None)


async def _traced(request: httpx.Request) -> None:
    """Client hook: each request of an attempt reports to the attempt's ``_Wire`` (one per task, a context var)."""
    wire = _WIRE.get()
    if wire is not None:
        wire.fresh = wire.answered = False
        request.extensions["trace"] = wire.trace


class Pacer:
    """``max_tps`` on this node: take tokens (going into debt) and wait the debt off, so requests are spread
    evenly rather than sent in bursts. The shared bucket in Redis (``dispatch.throttle``) caps all nodes."""

    def __init__(self, rate: float) -> None:
        self._bucket = rates.Bucket(rate, max(1.0, rate * 0.2), time.monotonic()) if rate > 0 else None

    async def take(self, n: int) -> None:
        if self._bucket is not None:
            wait = self._bucket.spend(n, time.monotonic())
            if wait > 0:
                await asyncio.sleep(wait)


@dataclasses.dataclass(slots=True)
class Stats:
    """Counters for ``/metrics``: requests by verdict and a latency histogram (per bucket, not cumulative)."""

    requests: dict[str, int] = dataclasses.field(default_factory=dict)
    buckets: list[int] = dataclasses.field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0

    def observe(self, seconds: float, verdict: http_answers.Verdict) -> None:
        self.requests[verdict.value] = self.requests.get(verdict.value, 0) + 1
        self.latency_sum += seconds
        for i, upper in enumerate(LATENCY_BUCKETS):
            if seconds <= upper:
                self.buckets[i] += 1
                return
        self.buckets[-1] += 1

    def payload(self, opened: int) -> dict[str, Any]:
        """These counters and the circuit's opening count as JSON, for the other process of a split node."""
        return {"requests": self.requests, "buckets": self.buckets, "latency_sum": self.latency_sum, "opened": opened}

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> tuple[Stats, int]:
        return cls(dict(data["requests"]), list(data["buckets"]), float(data["latency_sum"])), int(data["opened"])


class HttpConnector(abc.ABC):
    """A ``Connector`` (and ``Receiver``) to an HTTP SMS API; subclasses implement ``exchange``."""

    TYPE: ClassVar[str] = "http"
    takes_binary: ClassVar[bool] = False  # the upstream can send a binary part with its UDH (Vonage)

    def __init__(self, settings: HttpSettings, *, public_url: str | None = None) -> None:
        self.name = settings.name
        self.settings = settings
        self.paused = False
        self.idempotent = False  # sending the same request twice cannot send the SMS twice (an idempotency key)
        self.public_url = public_url.rstrip("/") if public_url else None
        self.circuit = http_circuit.Circuit(settings.circuit_failures, settings.circuit_open_seconds)
        self.stats = Stats()
        self.in_flight = 0
        self._sink: base.InboundSink | None = None
        # one client of one connection per request in flight: httpcore's pool matches every waiting request against
        # every connection on each event, which cost 2 ms per message at 16 connections in one pool (measured)
        self._lanes: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        self._clients: list[httpx.AsyncClient] = []
        self._probe = asyncio.Lock()
        self._pacer = Pacer(settings.max_tps)
        self._throttled_until = 0.0

    # -- what a subclass says -------------------------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def where(self) -> str:
        """The upstream's host for messages and health (never a path or query that could carry a key)."""

    def refuse(self, sub: http_answers.Submission) -> http_answers.Answer | None:
        """A REJECTED answer for a message this upstream cannot take at all, decided before any request."""
        return None

    @abc.abstractmethod
    async def exchange(self, client: httpx.AsyncClient, sub: http_answers.Submission) -> list[http_answers.Answer]:
        """Send one submission; one answer for the whole message or one per upstream part, in order."""

    def receipts_from(self, call: base.UpstreamCall) -> list[base.Receipt]:
        raise errors.NotFound(f"connector {self.name!r} ({self.TYPE}) takes no receipts: its upstream sends none")

    def inbound_from(self, call: base.UpstreamCall) -> list[base.InboundPart]:
        raise errors.NotFound(f"connector {self.name!r} ({self.TYPE}) takes no inbound messages")

    def receiver_url(self, kind: str) -> str | None:
        """Where the upstream should call back, from ``SMSGATE_PUBLIC_URL``; None when it is not known."""
        if self.public_url is None:
            return None
        return f"{self.public_url}/connectors/{urllib.parse.quote(self.name, safe='')}/{kind}"

    # -- the Connector contract ----------------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        return (
            not self.paused
            and self.circuit.state is not http_circuit.State.OPEN
            and time.monotonic() >= self._throttled_until
        )

    def health(self) -> base.ConnectorHealth:
        c = self.circuit
        state = c.state
        if self.paused:
            return self._health(base.ConnectorState.PAUSED, f"paused by the operator ({self.where})")
        if state is http_circuit.State.OPEN:
            detail = (
                f"circuit open after {c.failures} failures ({c.reason}); probing {self.where} in {c.retry_in():.0f}s"
            )
            return self._health(base.ConnectorState.DOWN, detail)
        if state is http_circuit.State.HALF_OPEN:
            return self._health(
                base.ConnectorState.DEGRADED, f"circuit half-open: probing {self.where} after {c.reason}"
            )
        rest = self._throttled_until - time.monotonic()
        if rest > 0:
            return self._health(base.ConnectorState.DEGRADED, f"throttled by {self.where} for {rest:.1f}s more")
        return self._health(base.ConnectorState.UP, f"{self.TYPE} upstream {self.where}")

    def _health(self, state: base.ConnectorState, detail: str) -> base.ConnectorHealth:
        rest = max(self.circuit.retry_in(), self._throttled_until - time.monotonic())
        return base.ConnectorHealth(
            state,
            detail,
            in_flight=self.in_flight,
            circuit=self.circuit.state.value,
            retry_in=rest if rest > 0 and not self.paused else None,
        )

    async def start(self, sink: base.InboundSink) -> None:
        self._sink = sink
        _quiet_client_logs()
        s = self.settings
        tls = httpx.create_ssl_context(verify=s.verify_tls)  # loaded once, shared by the lanes
        for _ in range(s.concurrency):
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(s.timeout, connect=min(s.connect_timeout, s.timeout)),
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                verify=tls,
                follow_redirects=False,  # a redirected POST would be re-sent as a GET, or to a host we did not choose
                headers={"user-agent": "smsgate"},
                event_hooks={"request": [_traced]},
            )
            self._clients.append(client)
            self._lanes.put_nowait(client)

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()
        self._clients.clear()
        self._lanes = asyncio.Queue()

    async def submit(self, parts: Sequence[base.OutboundPart]) -> list[base.SubmitOutcome]:
        subs = http_answers.submissions(parts)
        done = await asyncio.gather(*(self._submit_one(sub) for sub in subs))
        return [o for outcomes in done for o in outcomes]

    async def receive(self, call: base.UpstreamCall) -> int:
        if self._sink is None:
            raise errors.RouteUnavailable(f"connector {self.name!r} is not started")
        if call.kind == "receipts":
            receipts = self.receipts_from(call)
            if receipts:
                await self._sink.receipts(receipts)
            return len(receipts)
        inbound = self.inbound_from(call)
        if inbound:
            await self._sink.inbound(inbound)
        return len(inbound)

    # -- one message ---------------------------------------------------------------------------------------------
    async def _submit_one(self, sub: http_answers.Submission) -> list[base.SubmitOutcome]:
        refusal = self.refuse(sub) or (
            http_answers.Answer(
                http_answers.Verdict.REJECTED, error=f"{self.TYPE} upstream takes text only, not binary messages"
            )
            if sub.binary and not self.takes_binary
            else None
        )
        if refusal is not None:
            return self._outcomes(sub, [refusal])
        s = self.settings
        earlier: list[str] = []  # why the tries before the last one failed, for the part's event

        def done(answers: list[http_answers.Answer]) -> list[base.SubmitOutcome]:
            return self._outcomes(sub, answers, earlier)

        while True:
            if self.paused:
                return done([http_answers.Answer(http_answers.Verdict.RETRY, error="paused by the operator")])
            rest = self._throttled_until - time.monotonic()
            if rest > 0:
                return done(
                    [
                        http_answers.Answer(
                            http_answers.Verdict.THROTTLED, error="throttled by upstream", retry_after=rest
                        )
                    ]
                )
            answers = await self._gated(sub)
            if answers is None:
                why = f"circuit open ({self.circuit.reason})"
                return done(
                    [
                        http_answers.Answer(
                            http_answers.Verdict.RETRY, error=why, retry_after=max(self.circuit.retry_in(), 0.1)
                        )
                    ]
                )
            verdicts = {a.verdict for a in answers}
            ambiguous = verdicts == {http_answers.Verdict.UNKNOWN}
            if not (verdicts <= http_answers.NOT_SENT or (ambiguous and (s.retry_on_timeout or self.idempotent))):
                return done(answers)
            asked = max((a.retry_after or 0.0 for a in answers), default=0.0)
            wait = (
                asked * random.uniform(*UP_TO_A_FIFTH)
                if asked
                else backoff.delay(len(earlier), base=s.backoff, cap=math.inf, jitter=UP_TO_A_FIFTH)
            )
            give_up = (
                len(earlier) >= s.retries
                or wait > s.backoff_max
                or http_answers.Verdict.UNHEALTHY in verdicts
                or self.circuit.state is http_circuit.State.OPEN
            )
            if give_up:
                return done(answers)
            earlier.append(next((a.error for a in answers if a.error), answers[0].verdict.value))
            await asyncio.sleep(wait)

    async def _gated(self, sub: http_answers.Submission) -> list[http_answers.Answer] | None:
        """The request, if the circuit lets it through; a half-open circuit lets one through at a time."""
        state = self.circuit.state
        if state is http_circuit.State.OPEN:
            return None
        if state is http_circuit.State.HALF_OPEN:
            async with self._probe:
                if self.circuit.state is http_circuit.State.HALF_OPEN:
                    return await self._request(sub)  # the probe: its result closes or re-opens the circuit
            if self.circuit.state is http_circuit.State.OPEN:
                return None
        return await self._request(sub)

    async def _request(self, sub: http_answers.Submission) -> list[http_answers.Answer]:
        await self._pacer.take(len(sub.parts))
        if not self._clients:
            raise RuntimeError(f"connector {self.name!r} is not started")
        client = await self._lanes.get()
        try:
            self.in_flight += 1
            started = time.monotonic()
            wire = _Wire()
            token = _WIRE.set(wire)
            try:
                answers = await self.exchange(client, sub)
            except http_answers.Refusal as exc:
                answers = [exc.answer]
            except http_answers.NotSent as exc:
                answers = [http_answers.Answer(http_answers.Verdict.RETRY, error=str(exc))]
            except _UNSENT as exc:
                answers = [http_answers.Answer(http_answers.Verdict.RETRY, error=_describe(exc))]
            except _DROPPED as exc:
                if wire.dropped_unread:
                    answers = [
                        http_answers.Answer(
                            http_answers.Verdict.RETRY, error=f"kept-alive connection dropped: {_describe(exc)}"
                        )
                    ]
                else:
                    answers = [
                        http_answers.Answer(
                            http_answers.Verdict.UNKNOWN, error=f"no answer from {self.where}: {_describe(exc)}"
                        )
                    ]
            except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
                answers = [
                    http_answers.Answer(http_answers.Verdict.UNHEALTHY, error=f"bad upstream URL: {type(exc).__name__}")
                ]
            except httpx.HTTPError as exc:  # sent, and then the answer did not come (timeout, garbage)
                answers = [
                    http_answers.Answer(
                        http_answers.Verdict.UNKNOWN, error=f"no answer from {self.where}: {_describe(exc)}"
                    )
                ]
            finally:
                _WIRE.reset(token)
                self.in_flight -= 1
            elapsed = time.monotonic() - started
        finally:
            self._lanes.put_nowait(client)
        self._account(answers, elapsed)
        return answers

    def _account(self, answers: list[http_answers.Answer], elapsed: float) -> None:
        """Metrics, the circuit and throttling from one request's answers."""
        verdicts = {a.verdict for a in answers}
        worst = next(v for v in http_answers.Verdict if v in verdicts) if len(verdicts) > 1 else answers[0].verdict
        self.stats.observe(elapsed, worst)
        reason = next((a.error for a in answers if a.error), worst.value)
        was = self.circuit.state
        if http_answers.Verdict.ACCEPTED in verdicts or http_answers.Verdict.REJECTED in verdicts:
            self.circuit.success()
        elif http_answers.Verdict.UNHEALTHY in verdicts:
            self.circuit.trip(reason)
        elif http_answers.Verdict.RETRY in verdicts or http_answers.Verdict.UNKNOWN in verdicts:
            self.circuit.failure(reason)
        if http_answers.Verdict.THROTTLED in verdicts:
            rest = max((a.retry_after or 0.0 for a in answers), default=0.0) or self.settings.backoff
            self._throttled_until = max(self._throttled_until, time.monotonic() + rest)
        now = self.circuit.state
        if now is not was:
            if now is http_circuit.State.OPEN:
                level = logging.ERROR if http_answers.Verdict.UNHEALTHY in verdicts else logging.WARNING
                log.log(level, "connector %s: circuit open (%s); probing again in %.0fs", self.name, reason,
                        self.circuit.open_seconds)  # fmt: skip
            elif now is http_circuit.State.CLOSED:
                log.warning("connector %s: circuit closed, %s answers again", self.name, self.where)

    def _outcomes(
        self, sub: http_answers.Submission, answers: list[http_answers.Answer], earlier: Sequence[str] = ()
    ) -> list[base.SubmitOutcome]:
        """One outcome per part: answers one-to-one when they match the parts, else the last one repeats.

        A part not sent comes back when the upstream asked (Retry-After), else when the open circuit probes the
        upstream again, else after the dispatcher's backoff. Tries that failed before the last one are told in the
        note of the part's event."""
        out = []
        probe_in = self.circuit.retry_in() or None
        tried = (
            f"after {len(earlier)} failed {'try' if len(earlier) == 1 else 'tries'} ({earlier[-1]})"
            if earlier
            else None
        )

        def note(own: str | None) -> str | None:
            return "; ".join(n for n in (own, tried) if n) or None

        for i, part in enumerate(sub.parts):
            a = answers[min(i, len(answers) - 1)]
            pid = part.part_id
            if a.verdict is http_answers.Verdict.ACCEPTED:
                out.append(
                    base.SubmitOutcome(pid, base.SubmitStatus.ACCEPTED, network_id=a.network_id, note=note(a.note))
                )
            elif a.verdict is http_answers.Verdict.REJECTED:
                out.append(
                    base.SubmitOutcome(pid, base.SubmitStatus.FAILED, error=a.error, error_code=a.code, note=note(None))
                )
            elif a.verdict is http_answers.Verdict.UNKNOWN:
                why = f"{a.error}; it may have been sent, so it is not sent again"
                if not self.settings.retry_on_timeout:
                    why += " (retry_on_timeout = false)"
                status = base.SubmitStatus.UNKNOWN
                out.append(base.SubmitOutcome(pid, status, error=why, note=note("final: outcome unknown")))
            else:
                out.append(
                    base.SubmitOutcome(
                        pid,
                        base.SubmitStatus.RETRY,
                        error=a.error or a.verdict.value,
                        error_code=a.code,
                        retry_after=a.retry_after or probe_in,
                        unsent=True,
                    )
                )
        return out


def _quiet_client_logs() -> None:
    """httpx logs every request's URL at INFO (and httpcore its steps at DEBUG); a generic connector's URL may carry
    an API key, so they log warnings only, whatever the gateway's level. Our own lines name the host alone."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)


def _describe(exc: httpx.HTTPError) -> str:
    """The kind of failure without the request (whose URL may carry a key)."""
    text = str(exc).split("\n")[0][:120]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
