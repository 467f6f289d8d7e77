"""The SMPP codec: round trips, TLVs, framing of split and merged frames, fuzzed decode."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgate.connectors.smpp import pdu as p
from smsgate.connectors.smpp import wire

SUBMIT = p.ShortMessage(
    wire.SUBMIT_SM, 7, "smsgate", "31612345678", b"\x05\x00\x03\x01\x02\x01hello", source_addr_ton=5,
    dest_addr_ton=1, dest_addr_npi=1, esm_class=0x40, registered_delivery=1, data_coding=8,
    validity_period="000001000000000R", tlvs=((wire.TAG_SAR_MSG_REF_NUM, b"\x00\x07"), (wire.TAG_MESSAGE_PAYLOAD, b"x" * 300)),
)  # fmt: skip

SAMPLES: list[p.Pdu] = [
    p.Bind(wire.BIND_TRANSCEIVER, 1, "smsgate", "secret", "VMA", 0x34, 1, 1, "^316"),
    p.Bind(wire.BIND_RECEIVER, 2, "rx"),
    p.BindResp(wire.BIND_TRANSCEIVER_RESP, 0, 1, "SMSC", ((wire.TAG_SC_INTERFACE_VERSION, b"\x34"),)),
    p.BindResp(wire.BIND_TRANSMITTER_RESP, wire.ESME_RBINDFAIL, 3),
    SUBMIT,
    p.deliver_sm(9, "31612345678", "4567", b"hi", tlvs=((wire.TAG_RECEIPTED_MESSAGE_ID, b"abc\x00"),)),
    p.SmResp(wire.SUBMIT_SM_RESP, 0, 7, "1a2b"),
    p.SmResp(wire.SUBMIT_SM_RESP, wire.ESME_RTHROTTLED, 8),
    p.SmResp(wire.DELIVER_SM_RESP, 0, 9, ""),
    p.HeaderOnly(wire.ENQUIRE_LINK, 0, 10),
    p.HeaderOnly(wire.ENQUIRE_LINK_RESP, 0, 10),
    p.HeaderOnly(wire.UNBIND, 0, 11),
    p.HeaderOnly(wire.UNBIND_RESP, 0, 11),
    p.HeaderOnly(wire.GENERIC_NACK, wire.ESME_RINVCMDID, 12),
    p.HeaderOnly(0x00000103, 0, 13, b"\x00\x01"),  # data_sm: unknown to us, kept raw
    p.Outbind(14, "smsc", "pw"),
]


@pytest.mark.parametrize("pdu", SAMPLES, ids=lambda x: type(x).__name__)
def test_round_trip(pdu: p.Pdu) -> None:
    frame = p.encode(pdu)
    assert struct.unpack(">I", frame[:4])[0] == len(frame)
    assert p.decode(frame) == pdu


def test_submit_sm_wire_layout() -> None:
    frame = p.encode(p.submit_sm(1, "a", "b", b"xy", registered_delivery=1))
    assert frame.hex() == (
        "00000025" "00000004" "00000000" "00000001"  # header, 37 octets
        "00" "0000" "6100" "0000" "6200" "000000" "00" "00" "01" "00" "00" "00" "02" "7879"
    )  # fmt: skip


def test_tlv_helpers() -> None:
    assert wire.tlv_get(SUBMIT.tlvs, wire.TAG_MESSAGE_PAYLOAD) == b"x" * 300
    assert wire.tlv_int(SUBMIT.tlvs, wire.TAG_SAR_MSG_REF_NUM) == 7
    assert wire.tlv_get(SUBMIT.tlvs, wire.TAG_MESSAGE_STATE) is None


def test_status_names() -> None:
    assert wire.status_name(0x58) == "ESME_RTHROTTLED" and wire.status_name(0x14) == "ESME_RMSGQFUL"
    assert wire.status_name(0x400) == "0x00000400"


def test_short_message_over_255_is_refused() -> None:
    with pytest.raises(wire.PduError):
        p.encode(p.submit_sm(1, "a", "b", b"x" * 256))


def test_framer_split_and_merged() -> None:
    frames = [p.encode(x) for x in SAMPLES]
    stream = b"".join(frames)
    for size in (1, 3, 16, 17, 100, len(stream)):
        f = wire.Framer()
        out: list[bytes] = []
        for i in range(0, len(stream), size):
            out += f.feed(stream[i : i + size])
        assert out == frames and f.pending == 0


def test_framer_rejects_bad_length() -> None:
    with pytest.raises(wire.PduError) as exc:
        wire.Framer().feed(struct.pack(">IIII", 8, 4, 0, 1))
    assert exc.value.status == wire.ESME_RINVCMDLEN
    with pytest.raises(wire.PduError):
        wire.Framer(max_len=1000).feed(struct.pack(">I", 5000))


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        struct.pack(">IIII", 16, wire.SUBMIT_SM, 0, 1),  # no body at all
        struct.pack(">IIII", 20, wire.SUBMIT_SM, 0, 1) + b"abcd",  # unterminated string
        struct.pack(">IIII", 17, wire.SUBMIT_SM, 0, 1),  # length does not match
        p.encode(SUBMIT)[:-5],
    ],
)
def test_decode_malformed_raises_pdu_error(frame: bytes) -> None:
    with pytest.raises(wire.PduError):
        p.decode(frame)


def test_truncated_tlv() -> None:
    good = p.encode(p.submit_sm(1, "a", "b", b"x"))
    bad = good + b"\x04\x24\x00\x09ab"
    bad = struct.pack(">I", len(bad)) + bad[4:]
    with pytest.raises(wire.PduError):
        p.decode(bad)


_COMMANDS = st.sampled_from([wire.SUBMIT_SM, wire.DELIVER_SM, wire.SUBMIT_SM_RESP, wire.DELIVER_SM_RESP, wire.BIND_TRANSCEIVER,
                             wire.BIND_RECEIVER_RESP, wire.OUTBIND, wire.ENQUIRE_LINK, wire.GENERIC_NACK, 0x1234])  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(cid=_COMMANDS, body=st.binary(max_size=300), status=st.integers(0, 2**32 - 1))
def test_fuzz_decode_only_raises_pdu_error(cid: int, body: bytes, status: int) -> None:
    frame = struct.pack(">IIII", 16 + len(body), cid, status, 1) + body
    try:
        pdu = p.decode(frame)
    except wire.PduError:
        return
    assert pdu is not None


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200))
def test_fuzz_framer_and_decode(data: bytes) -> None:
    try:
        for frame in wire.Framer().feed(data):
            p.decode(frame)
    except wire.PduError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    src=st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=20),
    sm=st.binary(max_size=254),
    tlvs=st.lists(st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=4),
    esm=st.integers(0, 255),
)
def test_fuzz_round_trip_short_message(src: str, sm: bytes, tlvs: list[tuple[int, bytes]], esm: int) -> None:
    pdu = p.deliver_sm(3, src, "31600000000", sm, esm_class=esm, tlvs=tuple(tlvs))
    assert p.decode(p.encode(pdu)) == pdu
