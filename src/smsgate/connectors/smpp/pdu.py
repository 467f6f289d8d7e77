"""SMPP v3.4 PDU codec: just the PDUs a gateway needs, packed with precompiled ``struct``s.

Pure functions and frozen values, no I/O. ``decode`` raises only ``PduError`` (carrying the SMPP status
to answer with), whatever bytes it is given; ``Framer`` cuts a TCP byte stream into whole PDUs.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable

# command ids
GENERIC_NACK = 0x80000000
BIND_RECEIVER = 0x00000001
BIND_TRANSMITTER = 0x00000002
SUBMIT_SM = 0x00000004
DELIVER_SM = 0x00000005
UNBIND = 0x00000006
BIND_TRANSCEIVER = 0x00000009
OUTBIND = 0x0000000B
ENQUIRE_LINK = 0x00000015
RESP = 0x80000000
BIND_RECEIVER_RESP = RESP | BIND_RECEIVER
BIND_TRANSMITTER_RESP = RESP | BIND_TRANSMITTER
BIND_TRANSCEIVER_RESP = RESP | BIND_TRANSCEIVER
SUBMIT_SM_RESP = RESP | SUBMIT_SM
DELIVER_SM_RESP = RESP | DELIVER_SM
UNBIND_RESP = RESP | UNBIND
ENQUIRE_LINK_RESP = RESP | ENQUIRE_LINK
BIND_COMMANDS = frozenset({BIND_RECEIVER, BIND_TRANSMITTER, BIND_TRANSCEIVER})

# command_status values (SMPP 3.4 §5.1.3)
# fmt: off
STATUS_NAMES: dict[int, str] = {
    0x00: "ESME_ROK", 0x01: "ESME_RINVMSGLEN", 0x02: "ESME_RINVCMDLEN", 0x03: "ESME_RINVCMDID",
    0x04: "ESME_RINVBNDSTS", 0x05: "ESME_RALYBND", 0x06: "ESME_RINVPRTFLG", 0x07: "ESME_RINVREGDLVFLG",
    0x08: "ESME_RSYSERR", 0x0A: "ESME_RINVSRCADR", 0x0B: "ESME_RINVDSTADR", 0x0C: "ESME_RINVMSGID",
    0x0D: "ESME_RBINDFAIL", 0x0E: "ESME_RINVPASWD", 0x0F: "ESME_RINVSYSID", 0x11: "ESME_RCANCELFAIL",
    0x13: "ESME_RREPLACEFAIL", 0x14: "ESME_RMSGQFUL", 0x15: "ESME_RINVSERTYP", 0x33: "ESME_RINVNUMDESTS",
    0x34: "ESME_RINVDLNAME", 0x40: "ESME_RINVDESTFLAG", 0x42: "ESME_RINVSUBREP", 0x43: "ESME_RINVESMCLASS",
    0x44: "ESME_RCNTSUBDL", 0x45: "ESME_RSUBMITFAIL", 0x48: "ESME_RINVSRCTON", 0x49: "ESME_RINVSRCNPI",
    0x50: "ESME_RINVDSTTON", 0x51: "ESME_RINVDSTNPI", 0x53: "ESME_RINVSYSTYP", 0x54: "ESME_RINVREPFLAG",
    0x55: "ESME_RINVNUMMSGS", 0x58: "ESME_RTHROTTLED", 0x61: "ESME_RINVSCHED", 0x62: "ESME_RINVEXPIRY",
    0x63: "ESME_RINVDFTMSGID", 0x64: "ESME_RX_T_APPN", 0x65: "ESME_RX_P_APPN", 0x66: "ESME_RX_R_APPN",
    0x67: "ESME_RQUERYFAIL", 0xC0: "ESME_RINVOPTPARSTREAM", 0xC1: "ESME_ROPTPARNOTALLWD", 0xC2: "ESME_RINVPARLEN",
    0xC3: "ESME_RMISSINGOPTPARAM", 0xC4: "ESME_RINVOPTPARAMVAL", 0xFE: "ESME_RDELIVERYFAILURE", 0xFF: "ESME_RUNKNOWNERR",
}
# fmt: on
ESME_ROK = 0x00
ESME_RINVMSGLEN = 0x01
ESME_RINVCMDLEN = 0x02
ESME_RINVCMDID = 0x03
ESME_RINVBNDSTS = 0x04
ESME_RSYSERR = 0x08
ESME_RINVDSTADR = 0x0B
ESME_RBINDFAIL = 0x0D
ESME_RINVPASWD = 0x0E
ESME_RINVSYSID = 0x0F
ESME_RMSGQFUL = 0x14
ESME_RTHROTTLED = 0x58
ESME_RX_T_APPN = 0x64

# TLV tags
TAG_SC_INTERFACE_VERSION = 0x0210
TAG_SAR_MSG_REF_NUM = 0x020C
TAG_SAR_TOTAL_SEGMENTS = 0x020E
TAG_SAR_SEGMENT_SEQNUM = 0x020F
TAG_MESSAGE_PAYLOAD = 0x0424
TAG_RECEIPTED_MESSAGE_ID = 0x001E
TAG_MESSAGE_STATE = 0x0427
TAG_NETWORK_ERROR_CODE = 0x0423

ESM_UDHI = 0x40
ESM_RECEIPT = 0x04
HEADER_LEN = 16
MAX_PDU_LEN = 65536

HEADER = struct.Struct(">IIII")
_TLV_HEAD = struct.Struct(">HH")
_B3 = struct.Struct(">BBB")
_B2 = struct.Struct(">BB")
_B5 = struct.Struct(">BBBBB")
_U32 = struct.Struct(">I")


def status_name(status: int) -> str:
    """The SMPP name of a command_status, for errors and logs."""
    return STATUS_NAMES.get(status, f"0x{status:08X}")


class PduError(Exception):
    """A PDU that cannot be decoded; ``status`` is what to answer the peer with."""

    def __init__(self, message: str, status: int = ESME_RSYSERR) -> None:
        super().__init__(message)
        self.status = status


Tlvs = tuple[tuple[int, bytes], ...]


def tlv_get(tlvs: Tlvs, tag: int) -> bytes | None:
    """The value of the first TLV with ``tag``, or None."""
    for t, v in tlvs:
        if t == tag:
            return v
    return None


def tlv_int(tlvs: Tlvs, tag: int) -> int | None:
    """A TLV's value read as a big-endian unsigned integer."""
    v = tlv_get(tlvs, tag)
    return None if v is None or not v else int.from_bytes(v, "big")


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


@dataclasses.dataclass(frozen=True, slots=True)
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


@dataclasses.dataclass(frozen=True, slots=True)
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


def _tlv_bytes(tlvs: Tlvs) -> bytes:
    return b"".join(_TLV_HEAD.pack(t, len(v)) + v for t, v in tlvs)


def _frame(command_id: int, status: int, sequence: int, body: bytes) -> bytes:
    return HEADER.pack(HEADER_LEN + len(body), command_id, status, sequence) + body


def encode_header(command_id: int, status: int, sequence: int) -> bytes:
    """A body-less PDU (enquire_link, unbind, their resps, generic_nack)."""
    return HEADER.pack(HEADER_LEN, command_id, status, sequence)


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
    body = _c(p.system_id) + _tlv_bytes(p.tlvs) if p.status == 0 or p.system_id or p.tlvs else b""
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
        short_message, _tlv_bytes(tlvs) if tlvs else b"",
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
        out: list[tuple[int, bytes]] = []
        buf, end = self.buf, self.end
        pos = self.pos
        while pos < end:
            if pos + 4 > end:
                raise PduError("truncated TLV header", 0xC0)
            tag, ln = _TLV_HEAD.unpack_from(buf, pos)
            pos += 4
            if pos + ln > end:
                raise PduError("TLV length past the end of the PDU", 0xC2)
            out.append((tag, buf[pos : pos + ln]))
            pos += ln
        self.pos = pos
        return tuple(out)


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
    tlvs = _Reader(buf, pos + sm_len, end).tlvs() if pos + sm_len < end else ()
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


class Framer:
    """Cuts a byte stream into PDUs; keeps the partial tail for the next ``feed``."""

    __slots__ = ("_buf", "max_len")

    def __init__(self, max_len: int = MAX_PDU_LEN) -> None:
        self._buf = bytearray()
        self.max_len = max_len

    def feed(self, data: bytes) -> list[bytes]:
        """Return the whole frames now available; raise PduError on an impossible command_length."""
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos, n = 0, len(buf)
        unpack = _U32.unpack_from
        while n - pos >= 4:
            (length,) = unpack(buf, pos)
            if length < HEADER_LEN or length > self.max_len:
                raise PduError(f"bad command_length {length}", ESME_RINVCMDLEN)
            if n - pos < length:
                break
            out.append(bytes(buf[pos : pos + length]))
            pos += length
        if pos:
            del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete PDU waiting for more data."""
        return len(self._buf)
