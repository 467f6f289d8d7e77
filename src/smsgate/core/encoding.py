"""GSM 03.38 / UCS-2 text encoding for SMS.

The tables are taken from the ``gsm0338`` codec once at import, so the per-message work is a few
C-level string operations: pure-ASCII GSM text (the common case) never leaves the fast path.
"""

from __future__ import annotations

import codecs
import enum
import re

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)

from smsgate.errors import InvalidEncoding

__all__ = [
    "DATA_CODING",
    "Encoding",
    "choose",
    "decode",
    "encode",
    "gsm_rewrite",
    "is_gsm7",
    "non_gsm_characters",
    "septets",
    "ucs2_units",
]


class Encoding(str, enum.Enum):  # noqa: UP042  (the agreed API is a str mix-in Enum)
    """How the text travels: 7-bit GSM default alphabet, UCS-2 (UTF-16-BE) or raw octets."""

    GSM7 = "gsm7"
    UCS2 = "ucs2"
    BINARY = "binary"


DATA_CODING: dict[Encoding, int] = {Encoding.GSM7: 0, Encoding.UCS2: 8, Encoding.BINARY: 4}
"""SMPP ``data_coding`` for each encoding."""

ESC = 0x1B
_CODEC = "gsm03.38"


def _gsm_tables() -> tuple[dict[str, int], dict[str, int]]:
    """Read the basic and extension tables out of the gsm0338 codec (not a hand-written table)."""
    basic: dict[str, int] = {}
    for code in range(128):
        if code == ESC:  # the codec maps 0x1B to U+001B, but it is the escape prefix, not a character
            continue
        basic[bytes((code,)).decode(_CODEC)] = code
    extension: dict[str, int] = {}
    for code in range(128):
        try:
            extension[bytes((ESC, code)).decode(_CODEC)] = code
        except UnicodeDecodeError:
            continue
    return basic, extension


_BASIC, _EXTENSION = _gsm_tables()
GSM_CHARACTERS: frozenset[str] = frozenset(_BASIC) | frozenset(_EXTENSION)
EXTENSION_CHARACTERS: frozenset[str] = frozenset(_EXTENSION)

_ENCODE_MAP: dict[int, int | bytes] = {ord(c): b for c, b in _BASIC.items()}
_ENCODE_MAP.update({ord(c): bytes((ESC, b)) for c, b in _EXTENSION.items()})

# ASCII fast path: one byte table, valid for ASCII text without extension or non-GSM characters.
_ASCII_TABLE = bytes(_BASIC.get(chr(i), 0x3F) for i in range(256))
_ASCII_NOT_GSM = [chr(i) for i in range(128) if chr(i) not in GSM_CHARACTERS]
_ASCII_NOT_GSM_RE = re.compile("[" + "".join(re.escape(c) for c in _ASCII_NOT_GSM) + "]")
_ASCII_SLOW_RE = re.compile(
    "[" + "".join(re.escape(c) for c in _ASCII_NOT_GSM + sorted(c for c in _EXTENSION if c.isascii())) + "]"
)

# Decoding: 256 entries (anything >= 0x80 is not a septet and becomes "?").
_DECODE_TABLE = "".join({v: k for k, v in _BASIC.items()}.get(i, " " if i == ESC else "?") for i in range(256))
_EXT_DECODE: dict[int, str] = {b: c for c, b in _EXTENSION.items()}
_ASCII_DECODE = bytes(i if i < 0x80 else 0x3F for i in range(256))


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM default alphabet or its extension table."""
    if text.isascii():
        return _ASCII_NOT_GSM_RE.search(text) is None
    return GSM_CHARACTERS.issuperset(text)


def non_gsm_characters(text: str) -> list[str]:
    """The characters that force UCS-2, each once, in order of first appearance."""
    if is_gsm7(text):
        return []
    bad = set(text) - GSM_CHARACTERS
    return sorted(bad, key=text.index)


def _encode_gsm(text: str) -> bytes:
    """Unpacked septets (one per octet), extension characters as ESC + code."""
    if text.isascii() and _ASCII_SLOW_RE.search(text) is None:
        return text.encode("ascii").translate(_ASCII_TABLE)
    try:
        return codecs.charmap_encode(text, "strict", _ENCODE_MAP)[0]
    except UnicodeEncodeError as exc:
        raise InvalidEncoding(
            f"The text contains characters that GSM-7 cannot carry: {''.join(non_gsm_characters(text))!r}"
        ) from exc


def _encode_ucs2(text: str) -> bytes:
    try:
        return text.encode("utf-16-be")
    except UnicodeEncodeError as exc:  # only a lone surrogate can fail
        raise InvalidEncoding("The text contains an unpaired UTF-16 surrogate.") from exc


def septets(text: str) -> int:
    """GSM-7 length: extension characters take two septets."""
    if text.isascii() and _ASCII_SLOW_RE.search(text) is None:
        return len(text)
    return len(_encode_gsm(text))


def ucs2_units(text: str) -> int:
    """UTF-16 code units: characters outside the BMP (emoji) take two."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def choose(text: str, forced: Encoding | None = None) -> Encoding:
    """GSM-7 when the text fits it, else UCS-2; a client may force UCS-2, or GSM-7 if the text fits."""
    if forced is None:
        return Encoding.GSM7 if is_gsm7(text) else Encoding.UCS2
    if forced is Encoding.UCS2:
        return forced
    if forced is Encoding.GSM7:
        if not is_gsm7(text):
            raise InvalidEncoding(
                f"The text does not fit GSM-7; these characters need Unicode: {''.join(non_gsm_characters(text))!r}"
            )
        return forced
    raise InvalidEncoding("Binary encoding needs a binary body, not text.")


def encode(text: str, encoding: Encoding) -> bytes:
    """The octets SMPP carries for this encoding: unpacked GSM septets or UTF-16-BE."""
    if encoding is Encoding.GSM7:
        return _encode_gsm(text)
    if encoding is Encoding.UCS2:
        return _encode_ucs2(text)
    raise InvalidEncoding("Text cannot be encoded as binary; send a binary body instead.")


def _decode_gsm(payload: bytes) -> str:
    """Unpacked septets to text; per 3GPP 23.038 an unknown escape code shows its basic character."""
    if ESC not in payload:
        return codecs.charmap_decode(payload, "strict", _DECODE_TABLE)[0]
    out: list[str] = []
    pos, size = 0, len(payload)
    while True:
        esc = payload.find(ESC, pos)
        if esc < 0:
            out.append(codecs.charmap_decode(payload[pos:], "strict", _DECODE_TABLE)[0])
            break
        out.append(codecs.charmap_decode(payload[pos:esc], "strict", _DECODE_TABLE)[0])
        if esc + 1 >= size:  # a lone trailing escape carries nothing
            break
        code = payload[esc + 1]
        out.append(_EXT_DECODE.get(code) or _DECODE_TABLE[code])  # ESC ESC shows as a space
        pos = esc + 2
    return "".join(out)


def _dcs_alphabet(data_coding: int) -> int | None:
    """Map a 3GPP coding-group DCS (>= 0x10) to 0 (GSM), 8 (UCS-2), 4 (8-bit) or None (unsupported)."""
    group = data_coding & 0xF0
    if data_coding < 0x80:  # general data coding (0x40-0x7F: marked for automatic deletion)
        if data_coding & 0x20:  # compressed
            return None
        return (0, 4, 8, None)[(data_coding >> 2) & 0x03]
    if group in (0xC0, 0xD0):  # message waiting, GSM-7
        return 0
    if group == 0xE0:  # message waiting, UCS-2
        return 8
    if group == 0xF0:  # data coding / message class
        return 4 if data_coding & 0x04 else 0
    return None


_OTHER_CHARSETS: dict[int, str] = {
    5: "shift_jis",  # JIS (X 0208-1990)
    6: "iso8859_5",  # Cyrillic
    7: "iso8859_8",  # Latin/Hebrew
    10: "iso2022_jp",  # ISO-2022-JP (music codes)
    13: "euc_jis_2004",  # extended Kanji JIS (X 0212-1990)
    14: "euc_kr",  # KS C 5601
}


def decode(payload: bytes, data_coding: int) -> str:
    """Text of an inbound short message; never raises on bad bytes, only InvalidEncoding for binary."""
    if 0x10 <= data_coding <= 0xFF:
        alphabet = _dcs_alphabet(data_coding)
        if alphabet is None:
            raise InvalidEncoding(f"Unsupported data_coding 0x{data_coding:02X}.")
        data_coding = alphabet
    if data_coding == 0:
        return _decode_gsm(payload)
    if data_coding == 8:
        if len(payload) % 2:
            return payload[:-1].decode("utf-16-be", "replace") + "\ufffd"
        return payload.decode("utf-16-be", "replace")
    if data_coding == 1:
        return payload.translate(_ASCII_DECODE).decode("ascii")
    if data_coding == 3:
        return payload.decode("latin-1")
    if data_coding in (2, 4):
        raise InvalidEncoding("Binary data (data_coding 2/4) has no text.")
    charset = _OTHER_CHARSETS.get(data_coding)
    if charset is None:
        raise InvalidEncoding(f"Unsupported data_coding {data_coding}.")
    return payload.decode(charset, "replace")


_REWRITES: dict[str, str] = {
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u2039\u203a\u02bc\u00b4`", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2022\u2023\u2043", "-"),
    **dict.fromkeys("\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a", " "),
    **dict.fromkeys("\u202f\u205f\u3000\t", " "),
    **dict.fromkeys("\u200b\u2060\ufeff\u00ad", ""),
    "\u2026": "...",
}
_REWRITE_TABLE = str.maketrans(_REWRITES)
_REWRITE_RE = re.compile("[" + "".join(re.escape(c) for c in _REWRITES) + "]")


def gsm_rewrite(text: str) -> str:
    """Swap typographic look-alikes (curly quotes, dashes, ellipsis, odd spaces) for GSM-7 ones.

    Only unambiguous swaps: letters such as ``ç`` are left alone, so the caller still sees that the
    text needs UCS-2.
    """
    if _REWRITE_RE.search(text) is None:
        return text
    return text.translate(_REWRITE_TABLE)
