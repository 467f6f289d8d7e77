"""SMPP v3.4 below the PDU bodies: command ids, command_status values, TLV tags, the 16-octet header, TLVs,
and ``Framer``, which cuts a TCP byte stream into whole PDUs. The PDU values and their codec are in ``pdu``.

Pure functions, no I/O; every malformed input raises ``PduError`` carrying the SMPP status to answer with.
"""

from __future__ import annotations

import struct

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


def tlv_bytes(tlvs: Tlvs) -> bytes:
    """TLVs as they follow a PDU's mandatory fields."""
    return b"".join(_TLV_HEAD.pack(t, len(v)) + v for t, v in tlvs)


def parse_tlvs(buf: bytes, pos: int, end: int) -> Tlvs:
    """The TLVs in ``buf[pos:end]`` (the rest of a PDU body)."""
    out: list[tuple[int, bytes]] = []
    while pos < end:
        if pos + 4 > end:
            raise PduError("truncated TLV header", 0xC0)
        tag, ln = _TLV_HEAD.unpack_from(buf, pos)
        pos += 4
        if pos + ln > end:
            raise PduError("TLV length past the end of the PDU", 0xC2)
        out.append((tag, buf[pos : pos + ln]))
        pos += ln
    return tuple(out)


def encode_header(command_id: int, status: int, sequence: int) -> bytes:
    """A body-less PDU (enquire_link, unbind, their resps, generic_nack)."""
    return HEADER.pack(HEADER_LEN, command_id, status, sequence)


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
