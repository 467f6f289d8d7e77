"""Split a message into SMS parts that each fit 140 octets of user data.

The text is encoded once; parts are cut from the encoded bytes, moving a cut back by one unit when it
would split an escape pair (GSM-7) or a surrogate pair (UCS-2), so no handset ever shows half a
character.
"""

from __future__ import annotations

from dataclasses import dataclass

from smsgate.core.concat import IEI_CONCAT_8BIT, IEI_CONCAT_16BIT, concat_ie, information_elements
from smsgate.core.encoding import DATA_CODING, ESC, Encoding, choose, encode, non_gsm_characters
from smsgate.errors import EmptyText, InvalidEncoding, TextTooLong

__all__ = [
    "MAX_PARTS",
    "USER_DATA_OCTETS",
    "Part",
    "Segmentation",
    "segment_binary",
    "segment_text",
]

USER_DATA_OCTETS = 140
MAX_PARTS = 255

_SINGLE: dict[Encoding, int] = {Encoding.GSM7: 160, Encoding.UCS2: 70}
_PER_PART_8BIT: dict[Encoding, int] = {Encoding.GSM7: 153, Encoding.UCS2: 67}
_PER_PART_16BIT: dict[Encoding, int] = {Encoding.GSM7: 152, Encoding.UCS2: 66}
_UNIT_OCTETS: dict[Encoding, int] = {Encoding.GSM7: 1, Encoding.UCS2: 2}


@dataclass(slots=True)  # not frozen: built per message on the hot path (docs/decisions.md)
class Part:
    """One SMS: 1-based ``index`` of ``total``, its UDH (with length octet) and encoded user data."""

    index: int
    total: int
    text: str | None
    udh: bytes
    payload: bytes


@dataclass(slots=True)  # not frozen: built per message on the hot path (docs/decisions.md)
class Segmentation:
    """How a message is sent: encoding, parts, and the counts a client preview shows."""

    encoding: Encoding
    data_coding: int
    parts: tuple[Part, ...]
    units: int
    remaining_in_last_part: int
    non_gsm_characters: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.parts)


def _limit(max_parts: int) -> int:
    if max_parts < 1:
        raise ValueError("max_parts must be at least 1")
    return min(max_parts, MAX_PARTS)


def _too_many(limit: int) -> TextTooLong:
    return TextTooLong(f"The message is too long: it would need more than {limit} SMS parts.")


def _udh(ref: int, total: int, seq: int, ref_16bit: bool) -> bytes:
    ie = concat_ie(ref, total, seq, ref_16bit=ref_16bit)
    return bytes((len(ie),)) + ie


def segment_text(
    text: str,
    *,
    encoding: Encoding | None = None,
    reference: int = 0,
    reference_16bit: bool = False,
    max_parts: int = MAX_PARTS,
    max_chars: int | None = None,
) -> Segmentation:
    """Encode and split a text message (GSM-7 160/153/152, UCS-2 70/67/66 units per part)."""
    if not text:
        raise EmptyText()
    if max_chars is not None and len(text) > max_chars:
        raise TextTooLong(f"The text has {len(text)} characters; the limit is {max_chars} characters.")
    limit = _limit(max_parts)
    chosen = choose(text, encoding)
    single = _SINGLE[chosen]
    per_part = (_PER_PART_16BIT if reference_16bit else _PER_PART_8BIT)[chosen]
    # Every character is at least one unit: refuse huge texts before encoding them.
    if len(text) > single and len(text) > per_part * limit:
        raise _too_many(limit)
    data = encode(text, chosen)
    unit = _UNIT_OCTETS[chosen]
    units = len(data) // unit
    non_gsm = tuple(non_gsm_characters(text)) if chosen is Encoding.UCS2 else ()
    data_coding = DATA_CODING[chosen]
    if units <= single:
        part = Part(index=1, total=1, text=text, udh=b"", payload=data)
        return Segmentation(chosen, data_coding, (part,), units, single - units, non_gsm)

    gsm = chosen is Encoding.GSM7
    step = per_part * unit
    size = len(data)
    cuts: list[tuple[int, int]] = []
    start = 0
    while start < size:
        end = start + step
        if end >= size:
            end = size
        elif gsm:
            if data[end - 1] == ESC:  # never leave an escape without its code
                end -= 1
        elif 0xD8 <= data[end - 2] <= 0xDB:  # never leave a high surrogate without its low half
            end -= 2
        cuts.append((start, end))
        if len(cuts) > limit:
            raise _too_many(limit)
        start = end

    total = len(cuts)
    ref = reference & (0xFFFF if reference_16bit else 0xFF)
    parts: list[Part] = []
    pos = 0
    for seq, (start, end) in enumerate(cuts, 1):
        payload = data[start:end]
        if gsm:
            chars = (end - start) - data.count(ESC, start, end)
            part_text = text[pos : pos + chars]
            pos += chars
        else:
            part_text = payload.decode("utf-16-be")
        parts.append(Part(seq, total, part_text, _udh(ref, total, seq, reference_16bit), payload))
    remaining = per_part - len(parts[-1].payload) // unit
    return Segmentation(chosen, data_coding, tuple(parts), units, remaining, non_gsm)


def segment_binary(
    body: bytes,
    *,
    udh: bytes = b"",
    reference: int = 0,
    reference_16bit: bool = False,
    max_parts: int = MAX_PARTS,
) -> Segmentation:
    """Split a binary body (Vonage ``type=binary``), merging the concatenation IE into a client UDH."""
    if not body:
        raise EmptyText("The binary body is empty.")
    limit = _limit(max_parts)
    data_coding = DATA_CODING[Encoding.BINARY]
    elements: list[tuple[int, bytes]] = []
    if udh:
        parsed = information_elements(udh)
        if parsed is None or len(udh) != udh[0] + 1:
            raise InvalidEncoding("The UDH is malformed: its length octet does not match its elements.")
        elements = parsed
    if len(udh) + len(body) <= USER_DATA_OCTETS:
        part = Part(index=1, total=1, text=None, udh=udh, payload=body)
        remaining = USER_DATA_OCTETS - len(udh) - len(body)
        return Segmentation(Encoding.BINARY, data_coding, (part,), len(body), remaining, ())

    # Keep the client's other IEs; our concatenation IE replaces any it sent.
    others = b"".join(
        bytes((iei, len(data))) + data for iei, data in elements if iei not in (IEI_CONCAT_8BIT, IEI_CONCAT_16BIT)
    )
    ie_size = 6 if reference_16bit else 5
    header = 1 + ie_size + len(others)
    step = USER_DATA_OCTETS - header
    if step <= 0:
        raise InvalidEncoding("The UDH is too long to add a concatenation header.")
    total = -(-len(body) // step)
    if total > limit:
        raise _too_many(limit)
    ref = reference & (0xFFFF if reference_16bit else 0xFF)
    parts = tuple(
        Part(
            index=seq,
            total=total,
            text=None,
            udh=bytes((header - 1,)) + concat_ie(ref, total, seq, ref_16bit=reference_16bit) + others,
            payload=body[(seq - 1) * step : seq * step],
        )
        for seq in range(1, total + 1)
    )
    remaining = step - len(parts[-1].payload)
    return Segmentation(Encoding.BINARY, data_coding, parts, len(body), remaining, ())
