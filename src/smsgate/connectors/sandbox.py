"""The sandbox network: virtual handsets that take every part and answer with a receipt (the free demo).

It is a real connector (the default route without a config file) and the reference fake for tests. What a
handset received is read back from the store, so it survives restarts; receipts still pending when the process
stopped are re-armed by ``resume``.

Magic destination endings pick the other fates (documented in the README):

    …0001  absent subscriber: receipt "failed" (err 2)
    …0002  rejected by the network at submit
    …0003  expired: the handset never answers; receipt "expired" after the slow delay
    …0004  slow receipt: "delivered" after the slow delay

Each account may ask for a worse network for its own traffic (``behaviours``, set through ``services.sandbox``):
receipts duplicated, missing, late or out of order, and a fraction of submits throttled. With no account asking,
``behaviours`` is empty and a submit pays one truth test for it. What a switch did to a part is said in the
part's ``submitted`` event (its ``note``), so a test can see why a receipt did not come.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import heapq
import itertools
import logging
import time
from collections.abc import Sequence

from smsgate.connectors import base
from smsgate.core import encoding, handsets, segments

log = logging.getLogger(__name__)

ABSENT, REJECTED, EXPIRES, SLOW = "0001", "0002", "0003", "0004"
DUPLICATE_GAP = 0.05  # seconds between a receipt and its copy: a network's duplicate comes as a second delivery
OUT_OF_ORDER_WINDOW = 0.5  # seconds out-of-order receipts are held, to be handed over newest first
THROTTLED = 0x58  # ESME_RTHROTTLED, as an SMSC answers


@dataclasses.dataclass(frozen=True, slots=True)
class _Release:
    """A heap entry: hand over the out-of-order receipts held for ``account`` that are due."""

    account: str


_Entry = tuple[float, int, base.Receipt | _Release]


class SandboxNetwork:
    def __init__(self, name: str = "sandbox", *, receipt_delay: float = 0.2, slow_delay: float = 30.0) -> None:
        self.name = name
        self.receipt_delay = receipt_delay
        self.slow_delay = slow_delay
        self.up = True
        self.paused = False
        self._sink: base.InboundSink | None = None
        self._heap: list[_Entry] = []
        self._seq = itertools.count()
        self._ids = itertools.count(int(time.time() * 1000) % 10**12)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._mo_ref = itertools.count(1)
        # account id -> its switches; only accounts that asked for a worse network are here
        self.behaviours: dict[str, handsets.Behaviour] = {}
        self._diffusers: dict[tuple[str, str], handsets.Diffuser] = {}
        self._held: dict[str, list[tuple[float, base.Receipt]]] = {}  # out-of-order receipts, by account

    @property
    def available(self) -> bool:
        return self.up and not self.paused

    def share_ids(self) -> None:
        """Another process gives out this network's ids too (the halves of ``serve --processes 2``): count from a
        tenth of the id space further on, so the two never hand out the same one (it would take 10^11 ids)."""
        self._ids = itertools.count((int(time.time() * 1000) + 10**11) % 10**12)

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
        behaviours = self.behaviours
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
            behaviour = behaviours.get(p.account_id) if behaviours else None
            if behaviour is not None and self._diffuse(p.account_id, "throttle", behaviour.throttle):
                out.append(
                    base.SubmitOutcome(
                        p.part_id,
                        base.SubmitStatus.RETRY,
                        error="throttled by the sandbox network (behaviour: throttle)",
                        error_code=THROTTLED,
                        unsent=True,  # it did not go out: the route's next connector may take it
                    )
                )
                continue
            nid = f"SBX{next(self._ids):012d}"
            # receipts regardless of registered_delivery: the status in the store is the sandbox's whole point
            note = self._schedule(nid, p.destination, now, p.account_id, behaviour)
            out.append(base.SubmitOutcome(p.part_id, base.SubmitStatus.ACCEPTED, network_id=nid, note=note))
        self._wake.set()
        return out

    def set_behaviour(self, account_id: str, behaviour: handsets.Behaviour | None) -> None:
        """Switch an account's network behaviour (None or all off: the normal network); when it changes, fractions
        count afresh (a refresh that reads the same switches again keeps counting)."""
        if behaviour is not None and behaviour.normal:
            behaviour = None
        if self.behaviours.get(account_id) == behaviour:
            return
        if behaviour is None:
            self.behaviours.pop(account_id, None)
        else:
            self.behaviours[account_id] = behaviour
        for key in [k for k in self._diffusers if k[0] == account_id]:
            del self._diffusers[key]

    def _diffuse(self, account_id: str, kind: str, fraction: float) -> bool:
        if fraction <= 0.0:
            return False
        d = self._diffusers.get((account_id, kind))
        if d is None:
            d = self._diffusers[account_id, kind] = handsets.Diffuser()
        return d(fraction)

    def resume(self, pending: Sequence[tuple[str, str]]) -> None:
        """Re-arm receipts for (network_id, destination) pairs submitted before a restart."""
        now = time.time()
        for nid, destination in pending:
            self._schedule(nid, destination.lstrip("+"), now)
        self._wake.set()

    def _schedule(
        self, nid: str, destination: str, now: float, account: str = "", behaviour: handsets.Behaviour | None = None
    ) -> str | None:
        """Arm the part's receipt; with a behaviour, what it did to it (for the part's event), else None."""
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
        if behaviour is None:
            heapq.heappush(self._heap, (now + delay, next(self._seq), receipt))
            return None
        return self._misbehave(receipt, now + delay, account, behaviour)

    def _misbehave(self, receipt: base.Receipt, due: float, account: str, behaviour: handsets.Behaviour) -> str | None:
        """Arm ``receipt`` as the account's behaviour says; what was done, for the part's event."""
        if self._diffuse(account, "missing", behaviour.missing_receipts):
            return "sandbox behaviour: no receipt will come (receipts.missing)"
        notes = []
        if behaviour.late_by:
            due += behaviour.late_by
            receipt = dataclasses.replace(receipt, done_at=dt.datetime.fromtimestamp(due, dt.UTC))
            notes.append(f"receipt {behaviour.late_by:g} s late (receipts.late_by)")
        copies = 1
        if self._diffuse(account, "duplicate", behaviour.duplicate_receipts):
            copies = 2
            notes.append("receipt sent twice (receipts.duplicate)")
        if behaviour.out_of_order_receipts:
            notes.append("receipts handed over newest first (receipts.out_of_order)")
        for copy in range(copies):
            at = due + copy * DUPLICATE_GAP
            if behaviour.out_of_order_receipts:
                self._hold(account, at, receipt)
            else:
                heapq.heappush(self._heap, (at, next(self._seq), receipt))
        return "sandbox behaviour: " + "; ".join(notes) if notes else None

    def _hold(self, account: str, due: float, receipt: base.Receipt) -> None:
        held = self._held.setdefault(account, [])
        if not held:  # the first of a group: release the group once the window after it has passed
            heapq.heappush(self._heap, (due + OUT_OF_ORDER_WINDOW, next(self._seq), _Release(account)))
        held.append((due, receipt))

    def _release(self, account: str, now: float) -> list[base.Receipt]:
        """The account's held receipts that are due, newest first; the rest wait for their own window."""
        held = self._held.pop(account, [])
        ready = [r for due, r in sorted(held, key=lambda x: x[0]) if due <= now]
        later = [(due, r) for due, r in held if due > now]
        for due, r in later:
            self._hold(account, due, r)
        return ready[::-1]

    async def _receipts_loop(self) -> None:
        while True:
            now = time.time()
            due: list[base.Receipt] = []
            reordered: list[base.Receipt] = []
            while self._heap and self._heap[0][0] <= now and len(due) < 2000:
                item = heapq.heappop(self._heap)[2]
                if isinstance(item, _Release):
                    reordered += self._release(item.account, now)
                else:
                    due.append(item)
            if (due or reordered) and self._sink is not None:
                # out-of-order receipts one at a time, each in its own commit, so their order is the one recorded
                for batch in ([due] if due else []) + [[r] for r in reordered]:
                    try:
                        await self._sink.receipts(batch)
                    except Exception:
                        log.exception("sandbox could not hand over %d receipts; retrying", len(batch))
                        for r in batch:
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
