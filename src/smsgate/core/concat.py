"""User Data Header helpers: build and read the concatenation information element (3GPP TS 23.040).

Inbound parts arrive from SMSCs we do not control, so every reader here returns ``None`` (or the
input unchanged) on malformed data instead of raising.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "IEI_CONCAT_8BIT",
    "IEI_CONCAT_16BIT",
    "ConcatInfo",
    "concat_ie",
    "information_elements",
    "parse_udh",
    "strip_udh",
]

IEI_CONCAT_8BIT = 0x00
IEI_CONCAT_16BIT = 0x08


@dataclass(frozen=True, slots=True)
class ConcatInfo:
    """Where one part sits in a concatenated message: reference, number of parts, 1-based sequence."""

    ref: int
    total: int
    seq: int


def concat_ie(ref: int, total: int, seq: int, *, ref_16bit: bool = False) -> bytes:
    """The concatenation IE (IEI, length, data) without the UDH length octet."""
    if ref_16bit:
        return bytes((IEI_CONCAT_16BIT, 4, (ref >> 8) & 0xFF, ref & 0xFF, total, seq))
    return bytes((IEI_CONCAT_8BIT, 3, ref & 0xFF, total, seq))


def information_elements(udh: bytes) -> list[tuple[int, bytes]] | None:
    """The (IEI, data) pairs of a UDH that starts with its length octet; None when malformed.

    Bytes after the declared length are ignored, so a caller may pass the whole user data.
    """
    if not udh:
        return None
    length = udh[0]
    if length + 1 > len(udh):
        return None
    elements: list[tuple[int, bytes]] = []
    pos, end = 1, length + 1
    while pos < end:
        if pos + 2 > end:
            return None
        iei, iel = udh[pos], udh[pos + 1]
        stop = pos + 2 + iel
        if stop > end:
            return None
        elements.append((iei, udh[pos + 2 : stop]))
        pos = stop
    return elements


def parse_udh(udh: bytes) -> ConcatInfo | None:
    """The concatenation info of a UDH (8- or 16-bit reference), or None if absent or malformed."""
    elements = information_elements(udh)
    if elements is None:
        return None
    for iei, data in elements:
        if iei == IEI_CONCAT_8BIT and len(data) == 3:
            ref, total, seq = data[0], data[1], data[2]
        elif iei == IEI_CONCAT_16BIT and len(data) == 4:
            ref, total, seq = (data[0] << 8) | data[1], data[2], data[3]
        else:
            continue
        if total == 0 or seq == 0 or seq > total:
            return None
        return ConcatInfo(ref=ref, total=total, seq=seq)
    return None


def strip_udh(short_message: bytes) -> tuple[bytes, bytes]:
    """Split user data whose UDHI bit is set into (udh, payload).

    A UDH length that runs past the data is malformed: the data is then returned unchanged as
    ``(b"", short_message)`` so the text is at least delivered.
    """
    if not short_message:
        return b"", short_message
    end = short_message[0] + 1
    if end > len(short_message):
        return b"", short_message
    return short_message[:end], short_message[end:]
