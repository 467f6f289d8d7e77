"""SMSC simulator: a fast, scriptable SMPP v3.4 peer for tests, demos and the throughput benchmark.

Built on the connector's own codec but an independent state machine (the interop test uses smpp34 to
catch shared codec bugs). Misbehaviour is picked by name, several at once with commas, e.g.
``"throttle_every:10,slow:5"`` (see ``Mode.parse``). An HTTP control port (stdlib only) serves
``GET /stats``, ``POST /mo``, ``POST /mode`` and ``POST /reset``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import struct
import time
from collections.abc import Sequence
from typing import Any

from smsgate.connectors.smpp import pdu as p
from smsgate.connectors.smpp import wire
from smsgate.connectors.smpp.receipts import STAT_STATES, STATE_CODES, receipt_text

GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXT = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D, "]": 0x3E,
           "|": 0x40, "€": 0x65}  # fmt: skip
_GSM = {c: bytes((i,)) for i, c in enumerate(GSM_BASIC) if i != 0x1B} | {
    c: bytes((0x1B, v)) for c, v in GSM_EXT.items()
}


def encode_mo(text: str, ref: int) -> tuple[int, list[tuple[bytes, bytes]]]:
    """(data_coding, [(udh, payload)]): GSM 03.38 unpacked when every character fits, else UCS-2."""
    try:
        units = [_GSM[c] for c in text]
        dc, single, per_part = 0, 160, 153
    except KeyError:
        raw = text.encode("utf-16-be")
        units = [raw[i : i + 2] for i in range(0, len(raw), 2)]
        dc, single, per_part = 8, 140, 134
    if sum(len(u) for u in units) <= single:
        return dc, [(b"", b"".join(units))]
    chunks: list[bytes] = []
    cur = b""
    for u in units:  # never split an escape pair or a surrogate pair
        hi_surrogate = dc == 8 and 0xD8 <= u[0] <= 0xDB
        if len(cur) + len(u) + (2 if hi_surrogate else 0) > per_part:
            chunks.append(cur)
            cur = b""
        cur += u
    chunks.append(cur)
    total = len(chunks)
    return dc, [(bytes((5, 0, 3, ref & 0xFF, total, i + 1)), c) for i, c in enumerate(chunks)]


def _peek_submit(frame: bytes) -> tuple[str, int] | None:
    """destination_addr and registered_delivery of a submit_sm without decoding the rest (speed)."""
    i = frame.find(b"\x00", 16)  # service_type
    j = frame.find(b"\x00", i + 3)  # source_addr after its TON/NPI
    k = frame.find(b"\x00", j + 3)  # destination_addr after its TON/NPI
    m = frame.find(b"\x00", k + 4)  # schedule_delivery_time after esm_class, protocol_id, priority
    n = frame.find(b"\x00", m + 1)  # validity_period
    if min(i, j, k, m, n) < 0 or n + 1 >= len(frame):
        return None
    return frame[j + 3 : k].decode("latin-1"), frame[n + 1]


@dataclasses.dataclass(frozen=True, slots=True)
class Mode:
    """The misbehaviour in force (all off = a happy SMSC)."""

    throttle_every: int = 0  # answer ESME_RTHROTTLED to every Nth submit_sm
    queue_full_every: int = 0  # answer ESME_RMSGQFUL to every Nth
    fail_every: int = 0  # answer a permanent error (ESME_RINVDSTADR) to every Nth
    drop_after: int = 0  # close the connection after N more submit_sm (fires once, then disarms)
    no_response: bool = False  # never answer submit_sm
    generic_nack: bool = False  # answer submit_sm with generic_nack ESME_RSYSERR
    refuse_bind: bool = False  # answer binds with ESME_RBINDFAIL
    slow_ms: float = 0.0  # delay every submit_sm_resp
    duplicate_receipts: bool = False  # send every receipt twice

    @classmethod
    def parse(cls, spec: str) -> Mode:
        """``"name[:N],name[:N]"``; "" or "normal" = no misbehaviour; unknown names raise ValueError."""
        kw: dict[str, Any] = {}
        for item in filter(None, (x.strip() for x in spec.split(","))):
            name, _, arg = item.partition(":")
            if name == "normal":
                continue
            if name in ("throttle_every", "queue_full_every", "fail_every", "drop_after"):
                if not arg.isdigit() or int(arg) < 1:
                    raise ValueError(f"mode {name} needs a positive count, e.g. {name}:10")
                kw[name] = int(arg)
            elif name == "slow":
                kw["slow_ms"] = float(arg or "100")
            elif name in ("no_response", "generic_nack", "refuse_bind", "duplicate_receipts"):
                kw[name] = True
            else:
                raise ValueError(f"unknown simulator mode {name!r}")
        return cls(**kw)


@dataclasses.dataclass(frozen=True, slots=True)
class ReceiptRule:
    """Destinations matching prefix and suffix get ``stat`` (None: no receipt at all)."""

    stat: str | None
    prefix: str = ""
    suffix: str = ""
    err: int = 0

    def matches(self, destination: str) -> bool:
        return destination.startswith(self.prefix) and destination.endswith(self.suffix)


@dataclasses.dataclass(frozen=True, slots=True)
class SubmitRecord:
    message_id: str
    system_id: str
    source: str
    destination: str
    esm_class: int
    data_coding: int
    registered_delivery: int
    short_message: bytes
    tlvs: wire.Tlvs
    validity_period: str = ""
    at: float = 0.0  # when it arrived (epoch seconds)


class Stats:
    """Counters kept always (records are capped separately)."""

    def __init__(self) -> None:
        self.counters: collections.Counter[str] = collections.Counter()
        self.by_destination: collections.Counter[str] = collections.Counter()
        self.deliver_resp_status: collections.Counter[int] = collections.Counter()
        self.seen: set[int] = set()

    def as_dict(self) -> dict[str, Any]:
        return {**self.counters, "by_destination": dict(self.by_destination),
                "deliver_resp_status": {f"0x{k:02X}": v for k, v in self.deliver_resp_status.items()}}  # fmt: skip


_RESP_NAMES = {wire.GENERIC_NACK: "generic_nacks_received", wire.ENQUIRE_LINK_RESP: "enquire_link_resps",
               wire.UNBIND_RESP: "unbind_resps"}  # fmt: skip
_Pending = tuple[str, bytes, int]  # kind ("receipt"/"mo"), frame, attempts


class _Conn(asyncio.Protocol):
    """One ESME connection; decodes only what the simulator needs and batches its writes."""

    def __init__(self, sim: SmscSimulator) -> None:
        self.sim = sim
        self.transport: asyncio.Transport | None = None
        self.framer = wire.Framer()
        self.bound = 0
        self.system_id = ""
        self.out = bytearray()
        self.flush_scheduled = False
        self.seq = 0
        self.outstanding: dict[int, _Pending] = {}

    @property
    def can_receive(self) -> bool:
        return self.bound in (wire.BIND_RECEIVER, wire.BIND_TRANSCEIVER)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.sim.conns.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.sim.conns.discard(self)
        for kind, frame, attempts in self.outstanding.values():  # unacknowledged: the SMSC keeps them
            self.sim.pending_out.append((kind, frame, attempts))
        self.outstanding.clear()

    def write(self, data: bytes) -> None:
        """Queue bytes; one transport.write per loop iteration."""
        self.out += data
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        if self.out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(bytes(self.out))
        self.out.clear()

    def send_deliver(self, kind: str, frame: bytes, attempts: int) -> None:
        """Write a deliver_sm with a fresh sequence number and remember it until its resp."""
        self.seq = self.seq + 1 if self.seq < 0x7FFFFFFF else 1
        self.outstanding[self.seq] = (kind, frame, attempts)
        self.write(frame[:12] + struct.pack(">I", self.seq) + frame[16:])

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.framer.feed(data)
        except wire.PduError as exc:
            self.write(wire.encode_header(wire.GENERIC_NACK, exc.status, 0))
            self.flush()
            self.close()
            return
        for frame in frames:
            if self.transport is None or self.transport.is_closing():
                return
            self.handle(frame)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def handle(self, frame: bytes) -> None:
        sim = self.sim
        _, cid, status, seq = wire.HEADER.unpack_from(frame, 0)
        if cid == wire.SUBMIT_SM:
            sim.on_submit(self, frame, seq)
        elif cid == wire.DELIVER_SM_RESP:
            sim.on_deliver_resp(self, seq, status)
        elif cid == wire.ENQUIRE_LINK:
            sim.stats.counters["enquire_links"] += 1
            self.write(wire.encode_header(wire.ENQUIRE_LINK_RESP, 0, seq))
        elif cid in wire.BIND_COMMANDS:
            sim.on_bind(self, frame, cid, seq)
        elif cid == wire.UNBIND:
            sim.stats.counters["unbinds"] += 1
            self.write(wire.encode_header(wire.UNBIND_RESP, 0, seq))
            self.flush()
            self.close()
        elif cid & wire.RESP:  # enquire_link_resp, unbind_resp, generic_nack: count them
            sim.stats.counters[_RESP_NAMES.get(cid, "other_resps")] += 1
            if cid == wire.UNBIND_RESP:
                self.close()
        else:
            self.write(wire.encode_header(wire.GENERIC_NACK, wire.ESME_RINVCMDID, seq))


class SmscSimulator:
    """An SMSC on 127.0.0.1 (port 0 = ephemeral; ``port`` is the real one after ``start``)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        system_id: str = "SMSCSIM",
        credentials: dict[str, str] | None = None,
        receipt_delay_ms: float = 0.0,
        receipt_rules: Sequence[ReceiptRule] = (),
        mode: str = "",
        record_cap: int = 10_000,
        dedup_cap: int = 1_000_000,
        max_redeliveries: int = 3,
        redeliver_delay_ms: float = 200.0,
        message_id_format: str = "hex",
    ) -> None:
        self.host, self.port, self.system_id = host, port, system_id
        self.credentials = credentials
        self.receipt_delay = receipt_delay_ms / 1000
        self.receipt_rules = tuple(receipt_rules)
        self.mode = Mode.parse(mode)
        self.record_cap, self.dedup_cap = record_cap, dedup_cap
        self.max_redeliveries, self.redeliver_delay = max_redeliveries, redeliver_delay_ms / 1000
        self.message_id_format = message_id_format
        self.conns: set[_Conn] = set()
        self.pending_out: collections.deque[_Pending] = collections.deque(maxlen=100_000)
        self.stats = Stats()
        self.records: list[SubmitRecord] = []
        self._next_id = 0
        self._mode_count = 0
        self._mo_ref = 0
        self._server: asyncio.Server | None = None
        self._stopped = False

    # ------------------------------------------------------------ lifecycle and control

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Conn(self), self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        self._stopped = False

    async def stop(self) -> None:
        """Close abruptly (no unbind): what a crashed SMSC looks like to the ESME."""
        self._stopped = True
        if self._server is not None:
            self._server.close()
        for c in list(self.conns):
            if c.transport is not None:
                c.transport.abort()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()

    def set_mode(self, mode: str) -> None:
        self.mode = Mode.parse(mode)
        self._mode_count = 0

    def reset(self) -> None:
        self.stats = Stats()
        self.records.clear()
        self._mode_count = 0

    @property
    def receivers(self) -> list[_Conn]:
        return [c for c in self.conns if c.can_receive and c.transport is not None and not c.transport.is_closing()]

    # ------------------------------------------------------------ SMPP handling

    def on_bind(self, conn: _Conn, frame: bytes, cid: int, seq: int) -> None:
        try:
            bind = p.decode(frame)
        except wire.PduError as exc:
            conn.write(p.encode(p.BindResp(wire.RESP | cid, exc.status, seq)))
            return
        assert isinstance(bind, p.Bind)
        status = wire.ESME_ROK
        if conn.bound:
            status = 0x05  # ESME_RALYBND
        elif self.mode.refuse_bind:
            status = wire.ESME_RBINDFAIL
        elif self.credentials is not None:
            if bind.system_id not in self.credentials:
                status = wire.ESME_RINVSYSID
            elif self.credentials[bind.system_id] != bind.password:
                status = wire.ESME_RINVPASWD
        if status:
            self.stats.counters["binds_refused"] += 1
            conn.write(p.encode(p.BindResp(wire.RESP | cid, status, seq)))
            return
        conn.bound, conn.system_id = cid, bind.system_id
        self.stats.counters["binds"] += 1
        conn.write(p.encode(p.BindResp(wire.RESP | cid, 0, seq, self.system_id)))
        while conn.can_receive and self.pending_out:
            kind, out, attempts = self.pending_out.popleft()
            conn.send_deliver(kind, out, attempts)

    def on_submit(self, conn: _Conn, frame: bytes, seq: int) -> None:
        c = self.stats.counters
        c["submit_sm_received"] += 1
        if not conn.bound or conn.bound == wire.BIND_RECEIVER:
            conn.write(wire.encode_header(wire.SUBMIT_SM_RESP, wire.ESME_RINVBNDSTS, seq))
            return
        m = self.mode
        self._mode_count += 1
        n = self._mode_count
        if m.drop_after and n > m.drop_after:
            c["dropped_connections"] += 1
            self.mode = dataclasses.replace(m, drop_after=0)
            conn.flush()
            if conn.transport is not None:
                conn.transport.abort()
            return
        if m.no_response:
            c["unanswered"] += 1
            return
        if m.generic_nack:
            c["nacked"] += 1
            return self._answer(conn, wire.encode_header(wire.GENERIC_NACK, wire.ESME_RSYSERR, seq))
        for every, st, key in ((m.throttle_every, wire.ESME_RTHROTTLED, "throttled"),
                               (m.queue_full_every, wire.ESME_RMSGQFUL, "queue_full"),
                               (m.fail_every, wire.ESME_RINVDSTADR, "failed")):  # fmt: skip
            if every and n % every == 0:
                c[key] += 1
                return self._answer(conn, wire.encode_header(wire.SUBMIT_SM_RESP, st, seq))
        peek = _peek_submit(frame)
        if peek is None:
            return self._answer(conn, wire.encode_header(wire.SUBMIT_SM_RESP, wire.ESME_RINVCMDLEN, seq))
        destination, registered = peek
        self._next_id += 1
        msg_id = format(self._next_id, "x") if self.message_id_format == "hex" else str(self._next_id)
        c["submits"] += 1
        self.stats.by_destination[destination] += 1
        fp = hash(frame[16:])  # the whole body: source, destination, text, TLVs
        if fp in self.stats.seen:
            c["duplicate_parts"] += 1
        else:
            c["unique_parts"] += 1
            if len(self.stats.seen) < self.dedup_cap:
                self.stats.seen.add(fp)
        self._answer(conn, p.encode(p.SmResp(wire.SUBMIT_SM_RESP, 0, seq, msg_id)))
        if len(self.records) < self.record_cap or registered & 0x03:  # full decode only when needed
            with contextlib.suppress(wire.PduError):
                sm = p.decode(frame)
                assert isinstance(sm, p.ShortMessage)
                if len(self.records) < self.record_cap:
                    self.records.append(SubmitRecord(msg_id, conn.system_id, sm.source_addr, destination,
                                                     sm.esm_class, sm.data_coding, sm.registered_delivery,
                                                     sm.short_message, sm.tlvs, sm.validity_period,
                                                     time.time()))  # fmt: skip
                if registered & 0x03:
                    self._schedule_receipt(conn, sm, msg_id)

    def _answer(self, conn: _Conn, data: bytes) -> None:
        if self.mode.slow_ms:
            asyncio.get_running_loop().call_later(self.mode.slow_ms / 1000, conn.write, data)
        else:
            conn.write(data)

    def _schedule_receipt(self, conn: _Conn, sm: p.ShortMessage, msg_id: str) -> None:
        rule = next((r for r in self.receipt_rules if r.matches(sm.destination_addr)), None)
        stat, err = (rule.stat, rule.err) if rule is not None else ("DELIVRD", 0)
        if stat is None:
            self.stats.counters["receipts_withheld"] += 1
            return
        state = STATE_CODES[STAT_STATES[stat]]
        tlvs: wire.Tlvs = (
            (wire.TAG_RECEIPTED_MESSAGE_ID, msg_id.encode() + b"\x00"),
            (wire.TAG_MESSAGE_STATE, bytes((state,))),
        )
        if err:
            tlvs += ((wire.TAG_NETWORK_ERROR_CODE, b"\x03" + struct.pack(">H", err & 0xFFFF)),)
        text = receipt_text(msg_id, stat, err, text=sm.short_message[-20:])
        frame = p.encode(p.deliver_sm(0, sm.destination_addr, sm.source_addr, text, esm_class=wire.ESM_RECEIPT,
                                      source_addr_ton=sm.dest_addr_ton, source_addr_npi=sm.dest_addr_npi,
                                      tlvs=tlvs))  # fmt: skip
        copies = 2 if self.mode.duplicate_receipts else 1
        for _ in range(copies):
            if self.receipt_delay:
                asyncio.get_running_loop().call_later(self.receipt_delay, self.route, "receipt", frame, 0, conn)
            else:
                self.route("receipt", frame, 0, conn)

    def route(self, kind: str, frame: bytes, attempts: int, prefer: _Conn | None = None) -> bool:
        """Send a deliver_sm to ``prefer`` if it can receive, else to any receiver, else keep it."""
        if self._stopped:
            return False
        target = prefer if prefer is not None and prefer in self.conns and prefer.can_receive else None
        if target is None:
            receivers = self.receivers
            target = receivers[0] if receivers else None
        if target is None:
            self.pending_out.append((kind, frame, attempts))
            return False
        self.stats.counters[f"{kind}s_sent"] += 1
        target.send_deliver(kind, frame, attempts)
        return True

    def on_deliver_resp(self, conn: _Conn, seq: int, status: int) -> None:
        entry = conn.outstanding.pop(seq, None)
        if entry is None:
            return
        kind, frame, attempts = entry
        self.stats.deliver_resp_status[status] += 1
        if status == wire.ESME_ROK:
            self.stats.counters[f"{kind}s_acked"] += 1
            return
        self.stats.counters[f"{kind}s_nacked"] += 1
        if attempts < self.max_redeliveries:
            self.stats.counters["redeliveries"] += 1
            asyncio.get_running_loop().call_later(self.redeliver_delay, self.route, kind, frame, attempts + 1)
        else:  # refused too often: the SMSC gives up on it (a test can see that it was lost, and why)
            self.stats.counters[f"{kind}s_given_up"] += 1

    def send_to_all(self, command_id: int, body: bytes = b"") -> int:
        """Send a request (unbind, enquire_link, an unknown command...) to every bound session."""
        bound = [c for c in self.conns if c.bound]
        for c in bound:
            c.seq = c.seq + 1 if c.seq < 0x7FFFFFFF else 1
            c.write(p.encode(p.HeaderOnly(command_id, 0, c.seq, body)))
        return len(bound)

    # ------------------------------------------------------------ MO

    def inject_mo(self, source: str, destination: str, text: str) -> int:
        """Send an MO text (split into UDH parts if long); returns the number of parts sent or queued."""
        self._mo_ref = (self._mo_ref + 1) & 0xFF
        dc, parts = encode_mo(text, self._mo_ref)
        for udh, payload in parts:
            self.inject_raw(source, destination, udh + payload, data_coding=dc, esm_class=0x40 if udh else 0)
        return len(parts)

    def inject_raw(self, source: str, destination: str, short_message: bytes, *, data_coding: int = 0,
                   esm_class: int = 0, tlvs: wire.Tlvs = ()) -> bool:  # fmt: skip
        """Send any deliver_sm (binary MO, SAR TLVs, a hand-made receipt...)."""
        frame = p.encode(p.deliver_sm(0, source, destination, short_message, esm_class=esm_class,
                                      data_coding=data_coding, source_addr_ton=1, source_addr_npi=1,
                                      tlvs=tlvs))  # fmt: skip
        self.stats.counters["mo_injected"] += 1
        return self.route("mo", frame, 0)
