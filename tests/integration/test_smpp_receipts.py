"""Delivery receipt parsing: TLVs first, the Appendix B text after; message-id normalisation."""

from __future__ import annotations

import datetime as dt

import pytest

from smsgate.connectors.base import ReceiptState
from smsgate.connectors.smpp import pdu as p
from smsgate.connectors.smpp import wire
from smsgate.connectors.smpp.receipts import is_receipt, normalise_id, parse_fields, parse_receipt, receipt_text

TEXT = b"id:0123456789 sub:001 dlvrd:001 submit date:2611221010 done date:2611221011 stat:DELIVRD err:000 text:Hello"


def dlr(text: bytes, tlvs: wire.Tlvs = (), esm: int = wire.ESM_RECEIPT) -> p.ShortMessage:
    return p.deliver_sm(1, "31612345678", "smsgate", text, esm_class=esm, tlvs=tlvs)


def test_text_receipt_ten_digit_dates() -> None:
    r = parse_receipt(dlr(TEXT), "kpn")
    assert r is not None
    assert (r.connector, r.network_id, r.state, r.error_code) == ("kpn", "0123456789", ReceiptState.DELIVERED, 0)
    assert r.submitted_at == dt.datetime(2026, 11, 22, 10, 10, tzinfo=dt.UTC)
    assert r.done_at == dt.datetime(2026, 11, 22, 10, 11, tzinfo=dt.UTC)
    assert r.raw == TEXT.decode()


def test_twelve_digit_dates_case_insensitive_keys_and_error() -> None:
    text = b"ID:abc SUB:001 DLVRD:000 Submit Date:261122101005 Done Date:261122101107 Stat:undeliv Err:034"
    r = parse_receipt(dlr(text), "c")
    assert r is not None and r.network_id == "abc" and r.state is ReceiptState.UNDELIVERABLE
    assert r.error_code == 34 and r.done_at == dt.datetime(2026, 11, 22, 10, 11, 7, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("stat", "state"),
    [("DELIVRD", ReceiptState.DELIVERED), ("EXPIRED", ReceiptState.EXPIRED), ("DELETED", ReceiptState.DELETED),
     ("UNDELIV", ReceiptState.UNDELIVERABLE), ("ACCEPTD", ReceiptState.ACCEPTED), ("UNKNOWN", ReceiptState.UNKNOWN),
     ("REJECTD", ReceiptState.REJECTED), ("ENROUTE", ReceiptState.ENROUTE), ("garbage", ReceiptState.UNKNOWN)],
)  # fmt: skip
def test_stat_values(stat: str, state: ReceiptState) -> None:
    r = parse_receipt(dlr(f"id:1 stat:{stat}".encode()), "c")
    assert r is not None and r.state is state


def test_missing_fields_tolerated() -> None:
    r = parse_receipt(dlr(b"id:77 stat:DELIVRD"), "c")
    assert r is not None and r.submitted_at is None and r.done_at is None and r.error_code == 0
    r = parse_receipt(dlr(b"id:77 submit date:99 done date:2613451011 stat:EXPIRED"), "c")
    assert r is not None and r.submitted_at is None and r.done_at is None and r.state is ReceiptState.EXPIRED
    assert parse_receipt(dlr(b"stat:DELIVRD"), "c") is None
    assert parse_receipt(dlr(b""), "c") is None


def test_tlvs_win_over_text() -> None:
    tlvs = ((wire.TAG_RECEIPTED_MESSAGE_ID, b"tlv-id\x00"), (wire.TAG_MESSAGE_STATE, b"\x05"),
            (wire.TAG_NETWORK_ERROR_CODE, b"\x03\x00\x22"))  # fmt: skip
    r = parse_receipt(dlr(TEXT, tlvs), "c")
    assert r is not None and r.network_id == "tlv-id" and r.state is ReceiptState.UNDELIVERABLE
    assert r.error_code == 0x22 and r.done_at is not None


def test_tlv_only_and_message_payload() -> None:
    r = parse_receipt(dlr(b"", ((wire.TAG_RECEIPTED_MESSAGE_ID, b"9\x00"), (wire.TAG_MESSAGE_STATE, b"\x02"))), "c")
    assert r is not None and r.network_id == "9" and r.state is ReceiptState.DELIVERED
    r = parse_receipt(dlr(b"", ((wire.TAG_MESSAGE_PAYLOAD, TEXT),)), "c")
    assert r is not None and r.network_id == "0123456789"


def test_is_receipt() -> None:
    assert is_receipt(dlr(TEXT))
    assert is_receipt(dlr(b"", ((wire.TAG_RECEIPTED_MESSAGE_ID, b"1\x00"),), esm=0))
    assert not is_receipt(dlr(b"hello", esm=0))
    assert not is_receipt(dlr(b"\x05\x00\x03\x01\x02\x01hi", esm=0x40))


def test_id_normalisation_rule() -> None:
    assert normalise_id(" 00AB\x00", "str") == "00AB"
    assert normalise_id("000A1F", "hex") == normalise_id("a1f", "hex") == normalise_id("2591", "dec") == "a1f"
    assert normalise_id("0042", "dec") == normalise_id("2a", "hex") == "2a"
    assert normalise_id("not-a-number", "hex") == "not-a-number"


def test_hex_resp_decimal_receipt_compare_equal() -> None:
    resp_id = normalise_id("1A2B", "hex")
    r = parse_receipt(dlr(b"id:0000006699 stat:DELIVRD"), "c", id_format="dec")
    assert r is not None and r.network_id == resp_id


def test_fields_and_text_builder_agree() -> None:
    text = receipt_text("5f", "UNDELIV", 12, text=b"hello world")
    fields = parse_fields(text.decode())
    assert fields["id"] == "5f" and fields["stat"] == "UNDELIV" and fields["err"] == "012"
    assert fields["text"] == "hello world" and len(fields["submit_date"]) == 12
