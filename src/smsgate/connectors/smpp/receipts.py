"""Delivery receipts: recognise them in a deliver_sm and turn them into ``Receipt`` values.

TLVs win (receipted_message_id, message_state, network_error_code); the SMPP 3.4 Appendix B text
(``id:… sub:… dlvrd:… submit date:… done date:… stat:… err:…``) fills whatever they leave out.

Message-id normalisation (``id_format``), so that the id of submit_sm_resp and the id of the receipt
compare equal as strings:

* ``"str"`` — kept as sent, only NULs and surrounding blanks removed.
* ``"hex"`` / ``"dec"`` — the id is a number written in base 16 / base 10. Its canonical form is that
  number in *lower-case hexadecimal without leading zeros* (``"000A1F"``, ``"a1f"`` and the decimal
  ``"2591"`` all become ``"a1f"``). Each side is read in its own declared base: the submit_sm_resp id
  in ``id_format``, the receipt id in ``receipt_id_format`` (default: the same). A SMSC that answers
  submit_sm in hex and writes receipts in decimal (Kannel's msg-id-type 1) is configured as
  ``id_format="hex"``, ``receipt_id_format="dec"``. An id that does not parse in its base is kept
  as a lower-cased string, so a misconfiguration shows up as unmatched receipts, never as an error.
"""

from __future__ import annotations

import datetime as dt
import functools
import re

from smsgate.connectors.base import Receipt, ReceiptState
from smsgate.connectors.smpp import pdu as p
from smsgate.connectors.smpp import wire

STAT_STATES: dict[str, ReceiptState] = {
    "DELIVRD": ReceiptState.DELIVERED,
    "DELIVERED": ReceiptState.DELIVERED,
    "EXPIRED": ReceiptState.EXPIRED,
    "DELETED": ReceiptState.DELETED,
    "UNDELIV": ReceiptState.UNDELIVERABLE,
    "UNDELIVERABLE": ReceiptState.UNDELIVERABLE,
    "ACCEPTD": ReceiptState.ACCEPTED,
    "ACCEPTED": ReceiptState.ACCEPTED,
    "UNKNOWN": ReceiptState.UNKNOWN,
    "REJECTD": ReceiptState.REJECTED,
    "REJECTED": ReceiptState.REJECTED,
    "ENROUTE": ReceiptState.ENROUTE,
}
# message_state TLV values (SMPP 3.4 §5.2.28)
MESSAGE_STATES: dict[int, ReceiptState] = {
    1: ReceiptState.ENROUTE,
    2: ReceiptState.DELIVERED,
    3: ReceiptState.EXPIRED,
    4: ReceiptState.DELETED,
    5: ReceiptState.UNDELIVERABLE,
    6: ReceiptState.ACCEPTED,
    7: ReceiptState.UNKNOWN,
    8: ReceiptState.REJECTED,
}
STATE_STATS: dict[ReceiptState, str] = {
    ReceiptState.DELIVERED: "DELIVRD",
    ReceiptState.EXPIRED: "EXPIRED",
    ReceiptState.DELETED: "DELETED",
    ReceiptState.UNDELIVERABLE: "UNDELIV",
    ReceiptState.ACCEPTED: "ACCEPTD",
    ReceiptState.UNKNOWN: "UNKNOWN",
    ReceiptState.REJECTED: "REJECTD",
    ReceiptState.ENROUTE: "ENROUTE",
}
STATE_CODES: dict[ReceiptState, int] = {v: k for k, v in MESSAGE_STATES.items()}

# key:value pairs; "submit date" and "done date" contain a blank; "text:" runs to the end
_FIELD = re.compile(r"(?:^|\s)(id|sub|dlvrd|submit[ _]date|done[ _]date|stat|err):\s*(\S*)", re.IGNORECASE)
_TEXT = re.compile(r"(?:^|\s)text:", re.IGNORECASE)
# The Appendix B layout as SMSCs (and our simulator) write it, in one match: most receipts take this path, a
# third of the general parse's time; anything else (other order, extra blanks, empty or missing fields) takes the
# general one, which reads the same fields from this layout (``test_receipt_fields`` checks both on generated texts).
_LAYOUT = re.compile(
    r"id:(\S+) sub:(\S+) dlvrd:(\S+) submit date:(\S+) done date:(\S+) stat:(\S+) err:(\S+)(?: text:(.*))?",
    re.IGNORECASE | re.DOTALL,
)
_LAYOUT_KEYS = ("id", "sub", "dlvrd", "submit_date", "done_date", "stat", "err")


def normalise_id(raw: str, fmt: str) -> str:
    """Canonical form of a network message id (see the module docstring for the rule)."""
    s = raw.replace("\x00", "").strip()
    if fmt == "str" or not s:
        return s
    if not s.isascii():  # int() also reads other scripts' digits ("١٢"): not an id in any base we know
        return s.lower()
    try:
        return format(int(s, 16 if fmt == "hex" else 10), "x")
    except ValueError:
        return s.lower()


def is_receipt(sm: p.ShortMessage) -> bool:
    """A deliver_sm is a receipt when esm_class says so or it carries receipted_message_id."""
    if sm.esm_class & 0x3C == wire.ESM_RECEIPT:
        return True
    return any(tag == wire.TAG_RECEIPTED_MESSAGE_ID for tag, _ in sm.tlvs)


def parse_fields(text: str) -> dict[str, str]:
    """The key:value fields of a text receipt, keys lower-cased with ``_`` for the blank."""
    layout = _LAYOUT.fullmatch(text)
    if layout is not None:
        out = dict(zip(_LAYOUT_KEYS, layout.groups(), strict=False))
        if layout.group(8) is not None:
            out["text"] = layout.group(8).strip()
        return out
    return _any_fields(text)


def _any_fields(text: str) -> dict[str, str]:
    """``parse_fields`` for any order and spacing of the fields."""
    m = _TEXT.search(text)
    head = text[: m.start()] if m else text
    out: dict[str, str] = {}
    for key, value in _FIELD.findall(head):
        out.setdefault(key.lower().replace(" ", "_"), value)
    if m:
        out["text"] = text[m.end() :].strip()
    return out


def parse_date(value: str | None) -> dt.datetime | None:
    """YYMMDDhhmm or YYMMDDhhmmss (UTC assumed: the SMSC's zone is unknown); anything else → None."""
    return _parse_date(value) if value else None


@functools.lru_cache(maxsize=256)  # a burst of receipts shares a handful of minutes: a datetime is ~1 µs to build
def _parse_date(value: str) -> dt.datetime | None:
    if not value or not value.isascii() or not value.isdigit() or len(value) not in (10, 12):
        return None
    try:
        return dt.datetime(
            2000 + int(value[0:2]), int(value[2:4]), int(value[4:6]), int(value[6:8]), int(value[8:10]),
            int(value[10:12]) if len(value) == 12 else 0, tzinfo=dt.UTC,
        )  # fmt: skip
    except ValueError:
        return None


_ERR_DIGITS = 10  # longer than any real error code; Python's int() refuses over 4300 digits, so bound it well below


def _err_code(value: str | None, tlv: bytes | None) -> int:
    """The receipt's error code: the network_error_code TLV, else the text's ``err:`` (decimal, or hex as some
    SMSCs write it). Anything else (``¹``, a 4,300-digit field, letters) is unknown: 0, the raw text keeps it."""
    if tlv is not None and len(tlv) == 3:  # network_error_code: type(1) + code(2)
        return int.from_bytes(tlv[1:], "big")
    digits = (value or "").strip()
    if not digits or not digits.isascii() or len(digits) > _ERR_DIGITS:
        return 0
    if digits.isdigit():
        return int(digits)
    try:
        return int(digits, 16)
    except ValueError:
        return 0


def _raw_text(sm: p.ShortMessage) -> str:
    return (sm.short_message or wire.tlv_get(sm.tlvs, wire.TAG_MESSAGE_PAYLOAD) or b"").decode("latin-1")


def _network_id(sm: p.ShortMessage, fields: dict[str, str], id_format: str) -> str:
    tlv_id = wire.tlv_get(sm.tlvs, wire.TAG_RECEIPTED_MESSAGE_ID)
    return normalise_id(tlv_id.decode("latin-1") if tlv_id else fields.get("id", ""), id_format)


def parse_receipt(sm: p.ShortMessage, connector: str, id_format: str = "str") -> Receipt | None:
    """The Receipt in a deliver_sm, or None when it carries no message id at all."""
    raw = _raw_text(sm)
    fields = parse_fields(raw)
    network_id = _network_id(sm, fields, id_format)
    if not network_id:
        return None
    state_code = wire.tlv_int(sm.tlvs, wire.TAG_MESSAGE_STATE)
    state = MESSAGE_STATES.get(state_code) if state_code is not None else None
    if state is None:
        state = STAT_STATES.get(fields.get("stat", "").upper(), ReceiptState.UNKNOWN)
    return Receipt(
        connector=connector,
        network_id=network_id,
        state=state,
        error_code=_err_code(fields.get("err"), wire.tlv_get(sm.tlvs, wire.TAG_NETWORK_ERROR_CODE)),
        done_at=parse_date(fields.get("done_date")),
        submitted_at=parse_date(fields.get("submit_date")),
        raw=raw,
    )


def unknown_receipt(sm: p.ShortMessage, connector: str, id_format: str = "str") -> Receipt | None:
    """A receipt the parser could not read: its message id, if it has one, with state unknown and the raw text."""
    raw = _raw_text(sm)
    network_id = _network_id(sm, parse_fields(raw), id_format)
    return Receipt(connector, network_id, ReceiptState.UNKNOWN, raw=raw) if network_id else None


def receipt_text(
    message_id: str, stat: str, err: int = 0, submitted: dt.datetime | None = None,
    done: dt.datetime | None = None, text: bytes = b"",
) -> bytes:  # fmt: skip
    """The Appendix B text form (used by the simulator; kept here so both sides agree)."""
    sub = (submitted or dt.datetime.now(dt.UTC)).strftime("%y%m%d%H%M%S")
    dn = (done or dt.datetime.now(dt.UTC)).strftime("%y%m%d%H%M%S")
    head = f"id:{message_id} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} "
    head += f"submit date:{sub} done date:{dn} stat:{stat} err:{err:03d} text:"
    return head.encode("latin-1") + text[:20]
