"""The SMPP ``Connector``: supervised sessions, pipelined submits, receipts and MO to the sink.

Outcome rules: 0 → ACCEPTED (normalised network id); a status in ``retry_statuses`` (0x58 throttled,
0x14 queue full) → RETRY and the whole connector pauses for ``throttle_backoff``; no response (lost
connection, response timeout) → RETRY; any other status or a generic_nack → FAILED with its name.
A part is never ACCEPTED without a submit_sm_resp carrying ESME_ROK.

Concatenation (``concat``): "udh" puts the UDH in short_message with esm_class 0x40; "sar" drops the
UDH and sends sar_msg_ref_num / sar_total_segments / sar_segment_seqnum; "payload" sends each part on
its own in the message_payload TLV (UDH included, with esm_class 0x40, so handsets still reassemble):
the connector only ever sees parts, and re-joining them here would break per-part outcomes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import struct
import time
from collections.abc import Sequence

from smsgate.connectors.base import (
    ConnectorHealth,
    ConnectorState,
    InboundPart,
    InboundSink,
    OutboundPart,
    Receipt,
    SubmitOutcome,
    SubmitStatus,
)
from smsgate.connectors.smpp import pdu as p
from smsgate.connectors.smpp import wire
from smsgate.connectors.smpp.receipts import is_receipt, normalise_id, parse_receipt, unknown_receipt
from smsgate.connectors.smpp.session import LOST, SessionError, SmppSession, SubmitBatch, SubmitResult
from smsgate.connectors.smpp.settings import SmppSettings
from smsgate.core import backoff, rates

log = logging.getLogger(__name__)
_U16 = struct.Struct(">H")
# ShortMessage's fields in order, without building the (frozen, slower to construct) object
_SubmitFields = tuple[int, int, str, str, bytes, int, int, int, int, int, int, int, int, int, str, str, str, int, int,
                      wire.Tlvs]  # fmt: skip


EXPIRED = "validity period expired before submit"


def relative_validity(seconds: int) -> str:
    """SMPP relative time "YYMMDDhhmmss000R" (months counted as 30 days)."""
    s = max(1, seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    months, days = divmod(days, 30)
    years, months = divmod(months, 12)
    return f"{min(years, 99):02d}{months:02d}{days:02d}{hours:02d}{minutes:02d}{s:02d}000R"


def data_coding_for(part: OutboundPart) -> int:
    """The part's data_coding, with the message class folded in (general data coding group 00x1)."""
    dc = part.data_coding
    if part.message_class is None or dc not in (0, 4, 8):
        return dc
    return 0x10 | (dc & 0x0C) | (part.message_class & 0x03)


class SmppConnector:
    """SMPP v3.4 connector: one transceiver, or a transmitter plus a receiver, kept bound until close."""

    def __init__(self, settings: SmppSettings) -> None:
        self.name = settings.name
        self.settings = settings
        self._sink: InboundSink | None = None
        self._tx: SmppSession | None = None
        self._rx: SmppSession | None = None
        self._stop = asyncio.Event()
        self._supervisors: list[asyncio.Task[None]] = []
        self._paused_until = 0.0
        self.paused = False  # by the operator: stays bound (receipts keep coming), submits nothing
        self._bucket: rates.Bucket | None = None  # max_tps: a tenth of a second of it at once
        self.binds = 0  # successful binds so far (tests and metrics)

    # ------------------------------------------------------------ lifecycle

    @property
    def available(self) -> bool:
        tx = self._tx
        if self.paused or tx is None or not tx.bound or tx.closing:
            return False
        return time.monotonic() >= self._paused_until

    def health(self) -> ConnectorHealth:
        s = self.settings
        where = f"{s.host}:{s.port}"
        tx = self._tx
        if self.paused:
            return ConnectorHealth(ConnectorState.PAUSED, f"paused by the operator ({where})")
        if tx is None or not tx.bound or tx.closing:
            return ConnectorHealth(ConnectorState.DOWN, f"not bound to {where}")
        if time.monotonic() < self._paused_until:
            return ConnectorHealth(ConnectorState.DEGRADED, f"bound to {where}, throttled by the SMSC")
        return ConnectorHealth(ConnectorState.UP, f"bound to {where}")

    async def start(self, sink: InboundSink) -> None:
        """Start the supervisors; returns at once (binding happens in the background)."""
        self._sink = sink
        self._stop.clear()
        if self.settings.max_tps > 0:
            tps = self.settings.max_tps
            self._bucket = rates.Bucket(tps, max(1.0, tps / 10), time.monotonic())
        if self.settings.bind == "transceiver":
            self._spawn("trx", wire.BIND_TRANSCEIVER)
        else:
            self._spawn("tx", wire.BIND_TRANSMITTER)
            self._spawn("rx", wire.BIND_RECEIVER)

    def _spawn(self, role: str, command: int) -> None:
        task = asyncio.create_task(self._supervise(role, command), name=f"smpp:{self.name}:supervisor:{role}")
        self._supervisors.append(task)

    async def close(self) -> None:
        """Unbind every session gracefully and stop the supervisors."""
        self._stop.set()
        if self._supervisors:
            _, late = await asyncio.wait(self._supervisors, timeout=self.settings.close_timeout * 2 + 1)
            for t in late:
                t.cancel()
            if late:
                await asyncio.wait(late, timeout=1)
        self._supervisors.clear()

    async def _supervise(self, role: str, command: int) -> None:
        """Bind, wait for the session to end, reconnect with exponential backoff + jitter, until close."""
        s = self.settings
        attempt = 0
        while not self._stop.is_set():
            failure: Exception | None = None
            try:
                lived = await self._session_cycle(role, command)
            except Exception as exc:  # bind refused, connection refused, timeout, garbage, our own bug
                lived, failure = None, exc
            if self._stop.is_set():
                break
            # a session that lived long resets the backoff; one that dies at once (or never bound) escalates
            if lived is not None and lived >= s.reconnect_delay_max:
                attempt = 0
            wait = backoff.delay(attempt, base=s.reconnect_delay_min, cap=s.reconnect_delay_max)
            if failure is not None:
                log.warning("smpp %s:%s: bind failed (%r); retrying in %.1fs", self.name, role, failure, wait)
            await self._sleep(wait)
            attempt += 1

    async def _session_cycle(self, role: str, command: int) -> float:
        """One session from bind to its end; returns how long it was bound."""
        session = SmppSession(
            self.settings, command,
            on_deliver=self._on_deliver if command != wire.BIND_TRANSMITTER else None,
            on_throttle=self._throttled, label=f"{self.name}:{role}",
        )  # fmt: skip
        await session.open()
        bound_at = time.monotonic()
        self.binds += 1
        if command != wire.BIND_RECEIVER:
            self._tx = session
        if command != wire.BIND_TRANSMITTER:
            self._rx = session
        waits = [asyncio.ensure_future(self._stop.wait()), asyncio.ensure_future(session.closed.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            if self._tx is session:
                self._tx = None
            if self._rx is session:
                self._rx = None
            await session.close()
        return time.monotonic() - bound_at

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop.wait()

    def _throttled(self, status: int) -> None:
        until = time.monotonic() + self.settings.throttle_backoff
        if until > self._paused_until:
            self._paused_until = until
            log.info("smpp %s: %s, pausing %.2fs", self.name, wire.status_name(status), self.settings.throttle_backoff)

    # ------------------------------------------------------------ submit

    async def submit(self, parts: Sequence[OutboundPart]) -> list[SubmitOutcome]:
        """Pipeline the batch through the window; one outcome per part, never raises per part."""
        s = self.settings
        clock = time.monotonic
        n = len(parts)
        outcomes: list[SubmitOutcome | None] = [None] * n
        session = self._tx
        if session is None or not session.bound or not self.available:
            pause = self._paused_until - clock()
            why, wait = ("paused", pause) if pause > 0 else ("not bound", s.reconnect_delay_min)
            return [self._retry(pt, why, wait) for pt in parts]
        batch = SubmitBatch(n)
        bucket = self._bucket
        i = 0
        while i < n:
            # waiting for the window or max_tps can outlast a part's validity: such a part is never sent late
            wall = time.time()
            if clock() < self._paused_until or not session.bound:
                break
            free = session.free_slots()
            if free <= 0:
                try:
                    await session.wait_for_slot(s.response_timeout)
                except (SessionError, TimeoutError):
                    break
                continue
            k = min(free, n - i)
            if bucket is not None:
                k = bucket.grant(k, clock())
                if k == 0:
                    await asyncio.sleep(bucket.next_token())
                    continue
            entries: list[tuple[int, int, bytes]] = []
            for idx in range(i, i + k):
                deadline = parts[idx].expires_at
                if deadline is not None and wall >= deadline:
                    outcomes[idx] = SubmitOutcome(parts[idx].part_id, SubmitStatus.EXPIRED, error=EXPIRED)
                    continue
                seq = session.next_sequence()
                try:
                    entries.append((idx, seq, p.encode_sm(*self._submit_fields(parts[idx], seq))))
                except (wire.PduError, UnicodeEncodeError, ValueError) as exc:
                    outcomes[idx] = SubmitOutcome(parts[idx].part_id, SubmitStatus.FAILED, error=str(exc))
            i += k
            try:
                session.send_submits(batch, entries)
                await session.flush()
            except SessionError:
                break  # the entries already registered were failed by the session (RETRY)
        await batch.wait(s.response_timeout + 1.0)
        retry_wait = max(self._paused_until - clock(), 0.0)
        for idx in range(n):
            if outcomes[idx] is not None:
                continue
            result = batch.results[idx]
            if result is None:  # never sent (pause, lost session) or still unanswered
                outcomes[idx] = self._retry(parts[idx], "not sent", retry_wait or s.reconnect_delay_min)
            else:
                outcomes[idx] = self._outcome(parts[idx], result)
        return [o for o in outcomes if o is not None]

    def _retry(self, part: OutboundPart, why: str, after: float, code: int | None = None) -> SubmitOutcome:
        return SubmitOutcome(part.part_id, SubmitStatus.RETRY, error=why, error_code=code, retry_after=after)

    def _outcome(self, part: OutboundPart, r: SubmitResult) -> SubmitOutcome:
        s = self.settings
        if r.status == LOST:
            return self._retry(part, r.error, s.reconnect_delay_min)
        if r.status == wire.ESME_ROK and not r.nack:
            nid = normalise_id(r.message_id, s.id_format)
            return SubmitOutcome(part.part_id, SubmitStatus.ACCEPTED, network_id=nid or None)
        name = wire.status_name(r.status)
        if r.status in s.retry_statuses:
            return self._retry(part, name, s.throttle_backoff, r.status)
        if r.status in s.transient_statuses:
            return self._retry(part, name, s.reconnect_delay_min, r.status)
        error = f"generic_nack {name}" if r.nack else name
        return SubmitOutcome(part.part_id, SubmitStatus.FAILED, error=error, error_code=r.status)

    def build_submit(self, part: OutboundPart, sequence: int) -> p.ShortMessage:
        """The submit_sm for one part (concat mode, TON/NPI, validity, data coding)."""
        return p.ShortMessage(*self._submit_fields(part, sequence))

    def _submit_fields(self, part: OutboundPart, sequence: int) -> _SubmitFields:
        s = self.settings
        esm = 0
        tlvs: wire.Tlvs = ()
        sm = part.payload
        if s.concat == "udh":
            if part.udh:
                esm, sm = wire.ESM_UDHI, part.udh + part.payload
        elif s.concat == "sar":
            if part.part_total > 1:
                tlvs = (
                    (wire.TAG_SAR_MSG_REF_NUM, _U16.pack(part.concat_ref & 0xFFFF)),
                    (wire.TAG_SAR_TOTAL_SEGMENTS, bytes((part.part_total & 0xFF,))),
                    (wire.TAG_SAR_SEGMENT_SEQNUM, bytes((part.part_index & 0xFF,))),
                )
        else:
            if part.udh:
                esm = wire.ESM_UDHI
            tlvs, sm = ((wire.TAG_MESSAGE_PAYLOAD, part.udh + part.payload),), b""
        if len(sm) > 254:  # too long for short_message whatever the mode: carry it in message_payload
            tlvs, sm = (*tlvs, (wire.TAG_MESSAGE_PAYLOAD, sm)), b""
        return (
            wire.SUBMIT_SM, sequence, part.source, part.destination, sm,
            s.source_ton if s.source_ton is not None else part.source_ton,
            s.source_npi if s.source_npi is not None else part.source_npi,
            s.dest_ton, s.dest_npi, esm, part.protocol_id, s.priority_flag,
            1 if part.registered_delivery else 0, data_coding_for(part), s.service_type, "",
            relative_validity(part.validity_seconds) if part.validity_seconds else "", 0, 0, tlvs,
        )  # fmt: skip

    # ------------------------------------------------------------ inbound

    async def _on_deliver(self, pdus: Sequence[p.ShortMessage]) -> list[int]:
        """Each deliver_sm answered with its own status. One that cannot be parsed or stored never takes the
        others down with it: a receipt whose fields make no sense is recorded with state unknown, and only a PDU
        the sink refused is answered ESME_RX_T_APPN (the SMSC sends that one again).

        A batch of receipts goes to the sink in one call (one commit wait instead of a task and a future per
        PDU: ~2 % of the gateway's CPU under load); only if that call fails is each handed over alone, to find
        the one the sink refuses. Those the first call stored are then stored again, as when the SMSC resends a
        receipt whose response it never saw: applying a receipt twice changes nothing.

        The batch waits one turn of the event loop before it goes to the sink. The SMSC answers a submit_sm and
        sends its receipt right after, so both often come in one read, which wakes this task (at the first
        receipt) and the dispatcher's batch (at its last submit_sm_resp). Queued at once, the receipts often went
        into a commit that the submit results, queued by the dispatcher a moment later, missed: their parts did
        not carry the network ids yet, so they were held and applied again (a tenth to a quarter of receipts on
        the KPN bench, ``apply_held`` ~2 % of the gateway's CPU). One turn later the dispatcher has queued its
        results first, as when each receipt went to the sink in a task of its own."""
        sink = self._sink
        if sink is None:
            return [wire.ESME_RX_T_APPN] * len(pdus)
        now = dt.datetime.now(dt.UTC)
        if len(pdus) > 1 and all(is_receipt(sm) for sm in pdus):
            parsed = [self._receipt(sm) for sm in pdus]
            receipts = [r for r in parsed if r is not None]
            await asyncio.sleep(0)  # the submit results read with these receipts are queued first (see above)
            try:
                await sink.receipts(receipts)
            except Exception:
                log.warning("smpp %s: %d receipts not stored together; storing each alone", self.name, len(pdus))
            else:
                for sm, r in zip(pdus, parsed, strict=True):
                    if r is None:
                        log.warning("smpp %s: receipt without a message id dropped (seq %d)", self.name, sm.sequence)
                return [wire.ESME_ROK] * len(pdus)
        return list(await asyncio.gather(*(self._deliver_one(sink, sm, now) for sm in pdus)))

    async def _deliver_one(self, sink: InboundSink, sm: p.ShortMessage, now: dt.datetime) -> int:
        try:
            if is_receipt(sm):
                receipt = self._receipt(sm)
                if receipt is None:
                    log.warning("smpp %s: receipt without a message id dropped (seq %d)", self.name, sm.sequence)
                    return wire.ESME_ROK
                await sink.receipts([receipt])
            else:
                await sink.inbound([self.inbound_part(sm, now)])
        except Exception:
            log.exception(
                "smpp %s: could not store deliver_sm seq %d; answering ESME_RX_T_APPN", self.name, sm.sequence
            )
            return wire.ESME_RX_T_APPN
        return wire.ESME_ROK

    def _receipt(self, sm: p.ShortMessage) -> Receipt | None:
        """The receipt in ``sm``; one whose text defeats the parser keeps its id with state unknown."""
        try:
            return parse_receipt(sm, self.name, self.settings.receipt_ids)
        except Exception:
            log.warning("smpp %s: unparseable receipt (seq %d) recorded as unknown", self.name, sm.sequence)
            return unknown_receipt(sm, self.name, self.settings.receipt_ids)

    def inbound_part(self, sm: p.ShortMessage, now: dt.datetime) -> InboundPart:
        """An MO deliver_sm as an InboundPart: UDH split off, SAR passed through, message_payload used."""
        data = sm.short_message or wire.tlv_get(sm.tlvs, wire.TAG_MESSAGE_PAYLOAD) or b""
        udh = b""
        if sm.esm_class & wire.ESM_UDHI and data:
            cut = data[0] + 1
            udh, data = data[:cut], data[cut:]
        return InboundPart(
            connector=self.name, source=sm.source_addr, destination=sm.destination_addr,
            data_coding=sm.data_coding, payload=data, udh=udh,
            sar_ref=wire.tlv_int(sm.tlvs, wire.TAG_SAR_MSG_REF_NUM),
            sar_total=wire.tlv_int(sm.tlvs, wire.TAG_SAR_TOTAL_SEGMENTS),
            sar_seq=wire.tlv_int(sm.tlvs, wire.TAG_SAR_SEGMENT_SEQNUM), received_at=now,
        )  # fmt: skip
