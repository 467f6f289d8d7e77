"""The sandbox network: virtual handsets that take every part and answer with a receipt (the free demo).

It is a real connector (the default route without a config file) and the reference fake for tests. What a
handset received is read back from the store, so it survives restarts; receipts still pending when the process
stopped are re-armed by ``resume``.

Magic destination endings pick the other fates (documented in the README):

    …0001  absent subscriber: receipt "failed" (err 2)
    …0002  rejected by the network at submit
    …0003  expired: the handset never answers; receipt "expired" after the slow delay
    …0004  slow receipt: "delivered" after the slow delay
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import heapq
import itertools
import logging
import time
from collections.abc import Sequence

from smsgate.connectors import base
from smsgate.core import encoding, segments

log = logging.getLogger(__name__)

ABSENT, REJECTED, EXPIRES, SLOW = "0001", "0002", "0003", "0004"


class SandboxNetwork:
    def __init__(self, name: str = "sandbox", *, receipt_delay: float = 0.2, slow_delay: float = 30.0) -> None:
        self.name = name
        self.receipt_delay = receipt_delay
        self.slow_delay = slow_delay
        self.up = True
        self.paused = False
        self._sink: base.InboundSink | None = None
        self._heap: list[tuple[float, int, base.Receipt]] = []
        self._seq = itertools.count()
        self._ids = itertools.count(int(time.time() * 1000) % 10**12)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._mo_ref = itertools.count(1)

    @property
    def available(self) -> bool:
        return self.up and not self.paused

    def health(self) -> base.ConnectorHealth:
        if self.paused:
            return base.ConnectorHealth(base.ConnectorState.PAUSED, "paused by the operator")
        if self.up:
            return base.ConnectorHealth(base.ConnectorState.UP, "sandbox network: no SMS leaves this machine")
        return base.ConnectorHealth(base.ConnectorState.DOWN, "sandbox network switched off by the operator")

    async def start(self, sink: base.InboundSink) -> None:
        self._sink = sink
        self._task = asyncio.create_task(self._receipts_loop(), name=f"sandbox-{self.name}-receipts")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def submit(self, parts: Sequence[base.OutboundPart]) -> list[base.SubmitOutcome]:
        out = []
        now = time.time()
        for p in parts:
            if not self.up:
                out.append(
                    base.SubmitOutcome(
                        p.part_id, base.SubmitStatus.RETRY, error="sandbox network down", retry_after=1.0
                    )
                )
                continue
            if p.destination.endswith(REJECTED):
                out.append(
                    base.SubmitOutcome(
                        p.part_id, base.SubmitStatus.FAILED, error="rejected by network", error_code=0x45
                    )
                )
                continue
            nid = f"SBX{next(self._ids):012d}"
            out.append(base.SubmitOutcome(p.part_id, base.SubmitStatus.ACCEPTED, network_id=nid))
            # receipts regardless of registered_delivery: the status in the store is the sandbox's whole point
            self._schedule(nid, p.destination, now)
        self._wake.set()
        return out

    def resume(self, pending: Sequence[tuple[str, str]]) -> None:
        """Re-arm receipts for (network_id, destination) pairs submitted before a restart."""
        now = time.time()
        for nid, destination in pending:
            self._schedule(nid, destination.lstrip("+"), now)
        self._wake.set()

    def _schedule(self, nid: str, destination: str, now: float) -> None:
        state, err, delay = base.ReceiptState.DELIVERED, 0, self.receipt_delay
        if destination.endswith(ABSENT):
            state, err = base.ReceiptState.UNDELIVERABLE, 2
        elif destination.endswith(EXPIRES):
            state, err, delay = base.ReceiptState.EXPIRED, 1, self.slow_delay
        elif destination.endswith(SLOW):
            delay = self.slow_delay
        receipt = base.Receipt(
            connector=self.name,
            network_id=nid,
            state=state,
            error_code=err,
            done_at=dt.datetime.fromtimestamp(now + delay, dt.UTC),
            raw=f"id:{nid} stat:{state.value.upper()[:7]} err:{err:03d}",
        )
        heapq.heappush(self._heap, (now + delay, next(self._seq), receipt))

    async def _receipts_loop(self) -> None:
        while True:
            now = time.time()
            due: list[base.Receipt] = []
            while self._heap and self._heap[0][0] <= now and len(due) < 2000:
                due.append(heapq.heappop(self._heap)[2])
            if due and self._sink is not None:
                try:
                    await self._sink.receipts(due)
                except Exception:
                    log.exception("sandbox could not hand over %d receipts; retrying", len(due))
                    for r in due:
                        heapq.heappush(self._heap, (now + 1.0, next(self._seq), r))
                    await asyncio.sleep(1.0)
                continue
            wait = (self._heap[0][0] - now) if self._heap else 3600.0
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.005, wait))

    async def reply(self, source: str, destination: str, text: str) -> int:
        """A handset sends an SMS: split as a phone would (8-bit reference UDH) and hand it to the sink."""
        if self._sink is None:
            raise RuntimeError("sandbox not started")
        ref = next(self._mo_ref) & 0xFF
        seg = segments.segment_text(text, reference=ref)
        now = dt.datetime.now(dt.UTC)
        parts = [
            base.InboundPart(
                connector=self.name,
                source=source.lstrip("+"),
                destination=destination.lstrip("+"),
                data_coding=encoding.DATA_CODING[seg.encoding],
                payload=p.payload,
                udh=p.udh,
                network_id=f"SBXMO{next(self._ids):012d}",
                received_at=now,
            )
            for p in seg.parts
        ]
        await self._sink.inbound(parts)
        return len(parts)
