"""SMPP v3.4 PDU codec: just the PDUs a gateway needs, packed with precompiled ``struct``s.

Pure functions and frozen values, no I/O. ``decode`` raises only ``PduError`` (carrying the SMPP status
to answer with), whatever bytes it is given. Command ids, statuses, TLVs and framing are in ``wire``.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable

from smsgate.connectors.smpp.wire import (
    BIND_COMMANDS,
    DELIVER_SM,
    DELIVER_SM_RESP,
    ESME_RINVCMDLEN,
    HEADER,
    HEADER_LEN,
    OUTBIND,
    RESP,
    SUBMIT_SM,
    SUBMIT_SM_RESP,
    PduError,
    Tlvs,
    parse_tlvs,
    tlv_bytes,
)

_B3 = struct.Struct(">BBB")
_B2 = struct.Struct(">BB")
_B5 = struct.Struct(">BBBBB")


@dataclasses.dataclass(frozen=True, slots=True)
class Bind:
    """bind_transmitter / bind_receiver / bind_transceiver (``command_id`` says which)."""

    command_id: int
    sequence: int
    system_id: str
    password: str = ""
    system_type: str = ""
    interface_version: int = 0x34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class BindResp:
    command_id: int
    status: int
    sequence: int
    system_id: str = ""
    tlvs: Tlvs = ()


@dataclasses.dataclass(slots=True)  # not frozen: built per message on the hot path (docs/decisions.md)
class ShortMessage:
    """submit_sm or deliver_sm (same body, ``command_id`` says which)."""

    command_id: int
    sequence: int
    source_addr: str
    destination_addr: str
    short_message: bytes = b""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    registered_delivery: int = 0
    data_coding: int = 0
    service_type: str = ""
    schedule_delivery_time: str = ""
    validity_period: str = ""
    replace_if_present_flag: int = 0
    sm_default_msg_id: int = 0
    tlvs: Tlvs = ()


@dataclasses.dataclass(slots=True)  # not frozen: built per message on the hot path (docs/decisions.md)
class SmResp:
    """submit_sm_resp or deliver_sm_resp."""

    command_id: int
    status: int
    sequence: int
    message_id: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Outbind:
    sequence: int
    system_id: str
    password: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class HeaderOnly:
    """unbind, unbind_resp, enquire_link, enquire_link_resp, generic_nack, and any unknown command."""

    command_id: int
    status: int
    sequence: int
    body: bytes = b""


Pdu = Bind | BindResp | ShortMessage | SmResp | Outbind | HeaderOnly


def submit_sm(sequence: int, source: str, destination: str, short_message: bytes, **kw: object) -> ShortMessage:
    """Convenience constructor for a submit_sm."""
    return ShortMessage(SUBMIT_SM, sequence, source, destination, short_message, **kw)  # type: ignore[arg-type]


def deliver_sm(sequence: int, source: str, destination: str, short_message: bytes, **kw: object) -> ShortMessage:
    """Convenience constructor for a deliver_sm."""
    return ShortMessage(DELIVER_SM, sequence, source, destination, short_message, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- encoding


def _c(s: str) -> bytes:
    return s.encode("latin-1") + b"\x00"


def _frame(command_id: int, status: int, sequence: int, body: bytes) -> bytes:
    return HEADER.pack(HEADER_LEN + len(body), command_id, status, sequence) + body


def _enc_bind(p: Bind) -> bytes:
    body = b"".join(
        (
            _c(p.system_id),
            _c(p.password),
            _c(p.system_type),
            _B3.pack(p.interface_version, p.addr_ton, p.addr_npi),
            _c(p.address_range),
        )
    )
    return _frame(p.command_id, 0, p.sequence, body)


def _enc_bind_resp(p: BindResp) -> bytes:
    body = _c(p.system_id) + tlv_bytes(p.tlvs) if p.status == 0 or p.system_id or p.tlvs else b""
    return _frame(p.command_id, p.status, p.sequence, body)


def encode_sm(
    command_id: int, sequence: int, source_addr: str, destination_addr: str, short_message: bytes,
    source_addr_ton: int = 0, source_addr_npi: int = 0, dest_addr_ton: int = 0, dest_addr_npi: int = 0,
    esm_class: int = 0, protocol_id: int = 0, priority_flag: int = 0, registered_delivery: int = 0,
    data_coding: int = 0, service_type: str = "", schedule_delivery_time: str = "", validity_period: str = "",
    replace_if_present_flag: int = 0, sm_default_msg_id: int = 0, tlvs: Tlvs = (),
) -> bytes:  # fmt: skip
    """submit_sm / deliver_sm straight from fields (ShortMessage's order): the hot path skips the object."""
    n = len(short_message)
    if n > 255:
        raise PduError("short_message longer than 255 octets; use message_payload", 0x01)
    body = b"".join((
        service_type.encode("latin-1"), b"\x00", _B2.pack(source_addr_ton, source_addr_npi),
        source_addr.encode("latin-1"), b"\x00", _B2.pack(dest_addr_ton, dest_addr_npi),
        destination_addr.encode("latin-1"), b"\x00", _B3.pack(esm_class, protocol_id, priority_flag),
        schedule_delivery_time.encode("latin-1"), b"\x00", validity_period.encode("latin-1"), b"\x00",
        _B5.pack(registered_delivery, replace_if_present_flag, data_coding, sm_default_msg_id, n),
        short_message, tlv_bytes(tlvs) if tlvs else b"",
    ))  # fmt: skip
    return HEADER.pack(HEADER_LEN + len(body), command_id, 0, sequence) + body


def _enc_sm(p: ShortMessage) -> bytes:
    return encode_sm(
        p.command_id, p.sequence, p.source_addr, p.destination_addr, p.short_message, p.source_addr_ton,
        p.source_addr_npi, p.dest_addr_ton, p.dest_addr_npi, p.esm_class, p.protocol_id, p.priority_flag,
        p.registered_delivery, p.data_coding, p.service_type, p.schedule_delivery_time, p.validity_period,
        p.replace_if_present_flag, p.sm_default_msg_id, p.tlvs,
    )  # fmt: skip


def _enc_sm_resp(p: SmResp) -> bytes:
    # deliver_sm_resp's message_id is unused but present (a single NUL); error resps may omit the body
    body = _c(p.message_id) if p.status == 0 or p.message_id else b""
    return _frame(p.command_id, p.status, p.sequence, body)


def _enc_outbind(p: Outbind) -> bytes:
    return _frame(OUTBIND, 0, p.sequence, _c(p.system_id) + _c(p.password))


def _enc_header_only(p: HeaderOnly) -> bytes:
    return _frame(p.command_id, p.status, p.sequence, p.body)


_ENCODERS: dict[type, Callable[[object], bytes]] = {
    Bind: _enc_bind,  # type: ignore[dict-item]
    BindResp: _enc_bind_resp,  # type: ignore[dict-item]
    ShortMessage: _enc_sm,  # type: ignore[dict-item]
    SmResp: _enc_sm_resp,  # type: ignore[dict-item]
    Outbind: _enc_outbind,  # type: ignore[dict-item]
    HeaderOnly: _enc_header_only,  # type: ignore[dict-item]
}


def encode(pdu: Pdu) -> bytes:
    """The wire bytes of a PDU (header included)."""
    return _ENCODERS[type(pdu)](pdu)


# ---------------------------------------------------------------- decoding


class _Reader:
    """A cursor over a PDU body; every overrun becomes PduError."""

    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: bytes, pos: int, end: int) -> None:
        self.buf, self.pos, self.end = buf, pos, end

    def cstr(self, limit: int = 256) -> str:
        i = self.buf.find(b"\x00", self.pos, min(self.end, self.pos + limit + 1))
        if i < 0:
            raise PduError("unterminated C-octet string", 0xC2)
        s = self.buf[self.pos : i].decode("latin-1")
        self.pos = i + 1
        return s

    def byte(self) -> int:
        if self.pos >= self.end:
            raise PduError("PDU body too short", ESME_RINVCMDLEN)
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def take(self, n: int) -> bytes:
        if self.pos + n > self.end:
            raise PduError("PDU body too short", ESME_RINVCMDLEN)
        b = self.buf[self.pos : self.pos + n]
        self.pos += n
        return b

    def tlvs(self) -> Tlvs:
        out = parse_tlvs(self.buf, self.pos, self.end)
        self.pos = self.end
        return out


def _cstr_end(buf: bytes, pos: int, end: int) -> int:
    i = buf.find(b"\x00", pos, end)
    if i < 0:
        raise PduError("unterminated C-octet string", 0xC2)
    return i


def _dec_sm(cid: int, seq: int, buf: bytes, end: int) -> ShortMessage:
    """submit_sm / deliver_sm body, unrolled (the hot path of the receipt stream)."""
    i = _cstr_end(buf, HEADER_LEN, end)
    service_type = buf[HEADER_LEN:i].decode("latin-1")
    s_ton, s_npi = buf[i + 1], buf[i + 2]
    j = _cstr_end(buf, i + 3, end)
    src = buf[i + 3 : j].decode("latin-1")
    d_ton, d_npi = buf[j + 1], buf[j + 2]
    k = _cstr_end(buf, j + 3, end)
    dst = buf[j + 3 : k].decode("latin-1")
    esm, pid, prio = buf[k + 1], buf[k + 2], buf[k + 3]
    m = _cstr_end(buf, k + 4, end)
    n = _cstr_end(buf, m + 1, end)
    if n + 6 > end:
        raise PduError("PDU body too short", ESME_RINVCMDLEN)
    reg, rep, dc, dflt, sm_len = buf[n + 1], buf[n + 2], buf[n + 3], buf[n + 4], buf[n + 5]
    pos = n + 6
    if pos + sm_len > end:
        raise PduError("short_message past the end of the PDU", ESME_RINVCMDLEN)
    tlvs = parse_tlvs(buf, pos + sm_len, end) if pos + sm_len < end else ()
    return ShortMessage(
        cid, seq, src, dst, buf[pos : pos + sm_len], s_ton, s_npi, d_ton, d_npi, esm, pid, prio, reg, dc,
        service_type, buf[k + 4 : m].decode("latin-1"), buf[m + 1 : n].decode("latin-1"), rep, dflt, tlvs,
    )  # fmt: skip


def decode(frame: bytes) -> Pdu:
    """Decode one whole PDU (as cut by ``Framer``); raises only PduError."""
    if len(frame) < HEADER_LEN:
        raise PduError("PDU shorter than its header", ESME_RINVCMDLEN)
    length, cid, status, seq = HEADER.unpack_from(frame, 0)
    if length != len(frame):
        raise PduError("command_length does not match the frame", ESME_RINVCMDLEN)
    r = _Reader(frame, HEADER_LEN, length)
    try:
        if cid in (SUBMIT_SM, DELIVER_SM):
            return _dec_sm(cid, seq, frame, length)
        if cid in (SUBMIT_SM_RESP, DELIVER_SM_RESP):
            return SmResp(cid, status, seq, r.cstr(65) if length > HEADER_LEN else "")
        if cid in BIND_COMMANDS:
            sysid, pw, st = r.cstr(16), r.cstr(9), r.cstr(13)
            ver, ton, npi = r.byte(), r.byte(), r.byte()
            return Bind(cid, seq, sysid, pw, st, ver, ton, npi, r.cstr(41))
        if cid & RESP and (cid & ~RESP) in BIND_COMMANDS:
            if length == HEADER_LEN:
                return BindResp(cid, status, seq)
            return BindResp(cid, status, seq, r.cstr(16), r.tlvs())
        if cid == OUTBIND:
            return Outbind(seq, r.cstr(16), r.cstr(9))
        return HeaderOnly(cid, status, seq, frame[HEADER_LEN:])
    except (IndexError, ValueError, struct.error) as exc:  # defensive: the reader should catch all
        raise PduError(f"malformed PDU: {exc}", ESME_RINVCMDLEN) from exc
