"""Inbound (MO) messages as values: a part as it came off the network, and reassembly of a concatenated one.

Pure: the store keeps the fragments that wait for their siblings (keyed by connector, source, destination and
reference) and hands the pieces here once all arrived, or once the reassembly timeout passed (``incomplete``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from smsgate.core import concat, encoding
from smsgate.errors import InvalidEncoding

# the encoding we record for an inbound message's data coding; any other coding is binary unless it decodes
_ENCODINGS = {0: "gsm7", 8: "ucs2"}


@dataclasses.dataclass(frozen=True, slots=True)
class InboundPart:
    """An inbound (MO) SMS part as it came off the network; reassembly happens above the connector."""

    connector: str
    source: str  # E.164 without "+" (or alphanumeric)
    destination: str
    data_coding: int
    payload: bytes  # user data without the UDH
    udh: bytes = b""
    # concatenation info from SAR TLVs, when the network used them instead of a UDH
    sar_ref: int | None = None
    sar_total: int | None = None
    sar_seq: int | None = None
    network_id: str | None = None
    received_at: dt.datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Piece:
    """One part of an inbound message: its position, data coding, payload and (when it decodes) text."""

    seq: int
    data_coding: int
    payload: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class Assembled:
    """An inbound message ready to store: the joined text (None when binary) and its parts."""

    text: str | None
    encoding: str
    parts: tuple[tuple[Piece, str | None], ...]  # each piece with its own text
    parts_count: int
    incomplete: bool
    data: str | None  # the whole payload in hex, for a binary message

    @property
    def received(self) -> list[int]:
        return [piece.seq for piece, _text in self.parts]


def concat_info(part: InboundPart) -> concat.ConcatInfo | None:
    """Where ``part`` sits in a concatenated message (SAR TLVs first, then the UDH), or None for a whole one."""
    if part.sar_total and part.sar_total > 1 and part.sar_seq:
        return concat.ConcatInfo(ref=part.sar_ref or 0, total=part.sar_total, seq=part.sar_seq)
    if part.udh:
        info = concat.parse_udh(part.udh)
        if info is not None and info.total > 1:
            return info
    return None


def _text(data_coding: int, payload: bytes) -> str | None:
    try:
        return encoding.decode(payload, data_coding)
    except InvalidEncoding:
        return None


def assemble(pieces: Sequence[Piece], *, incomplete: bool = False, total: int | None = None) -> Assembled:
    """Join ``pieces`` (in order) into one message; binary when any piece does not decode as text."""
    texts = [_text(p.data_coding, p.payload) for p in pieces]
    binary = any(t is None for t in texts)
    first = pieces[0].data_coding
    return Assembled(
        text=None if binary else "".join(t or "" for t in texts),
        encoding=_ENCODINGS.get(first, "binary" if binary else "gsm7"),
        parts=tuple(zip(pieces, texts, strict=True)),
        parts_count=total or len(pieces),
        incomplete=incomplete,
        data=b"".join(p.payload for p in pieces).hex() if binary else None,
    )


def address(raw: str) -> str:
    """How an inbound address is stored: digits get their "+" (E.164), a name stays as it is."""
    return "+" + raw if raw.isdigit() else raw
