from __future__ import annotations

import gsm0338  # noqa: F401  (registers the codec)
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgate.core.encoding import (
    DATA_CODING,
    EXTENSION_CHARACTERS,
    GSM_CHARACTERS,
    Encoding,
    choose,
    decode,
    encode,
    gsm_rewrite,
    is_gsm7,
    non_gsm_characters,
    septets,
    ucs2_units,
)
from smsgate.errors import InvalidEncoding

GSM_ALPHABET = sorted(GSM_CHARACTERS)
EXTENSION = sorted(EXTENSION_CHARACTERS)
FAST = settings(max_examples=150, deadline=None)


def test_tables_come_from_the_codec() -> None:
    assert len(GSM_CHARACTERS) == 127 + 10  # 128 basic septets minus ESC, plus the extension table
    assert set(EXTENSION) == set("\x0c^{}\\[~]|€")
    for char in GSM_ALPHABET:
        assert encode(char, Encoding.GSM7) == char.encode("gsm03.38")
    assert "\x1b" not in GSM_CHARACTERS  # the codec maps ESC to U+001B; it is a prefix, not a character


def test_data_coding() -> None:
    assert DATA_CODING == {Encoding.GSM7: 0, Encoding.UCS2: 8, Encoding.BINARY: 4}
    assert Encoding("ucs2") is Encoding.UCS2
    assert isinstance(Encoding.GSM7, str)
    assert Encoding.GSM7.value == "gsm7"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ("Hello, world!", True),
        ("Ç", True),
        ("ç", False),
        ("€ [x] {y} ~ | ^ \\", True),
        ("\x0c", True),
        ("héllo àèìòù ÄÖÑÜ ß Δ", True),
        ("á", False),
        ("`", False),
        ("\t", False),
        ("\x1b", False),
        ("\x00", False),
        ("😀", False),
        ("Привет", False),
        ("’", False),
        ("@£$¥¤§¿¡_", True),
    ],
)
def test_is_gsm7(text: str, expected: bool) -> None:
    assert is_gsm7(text) is expected


def test_non_gsm_characters_unique_in_order() -> None:
    assert non_gsm_characters("plain") == []
    assert non_gsm_characters("ça 😀 va ç 😀 á") == ["ç", "😀", "á"]
    assert non_gsm_characters("a`b\tc`") == ["`", "\t"]


def test_septets_and_units() -> None:
    assert septets("abc") == 3
    assert septets("€") == 2
    assert septets("[x]") == 5
    assert septets("é€") == 3
    with pytest.raises(InvalidEncoding):
        septets("ç")
    assert ucs2_units("abc") == 3
    assert ucs2_units("é") == 1
    assert ucs2_units("😀") == 2
    assert ucs2_units("a😀b") == 4


def test_choose() -> None:
    assert choose("hello") is Encoding.GSM7
    assert choose("ça") is Encoding.UCS2
    assert choose("Ça") is Encoding.GSM7
    assert choose("hello", Encoding.UCS2) is Encoding.UCS2
    assert choose("hello", Encoding.GSM7) is Encoding.GSM7
    with pytest.raises(InvalidEncoding, match="ç"):
        choose("ça", Encoding.GSM7)
    with pytest.raises(InvalidEncoding):
        choose("hello", Encoding.BINARY)


def test_encode() -> None:
    assert encode("@", Encoding.GSM7) == b"\x00"
    assert encode("A$_", Encoding.GSM7) == b"A\x02\x11"
    assert encode("€", Encoding.GSM7) == b"\x1b\x65"
    assert encode("a[b]", Encoding.GSM7) == b"a\x1b\x3cb\x1b\x3e"
    assert encode("Ç", Encoding.GSM7) == b"\x09"
    assert encode("😀", Encoding.UCS2) == b"\xd8\x3d\xde\x00"
    assert encode("hé", Encoding.UCS2) == b"\x00h\x00\xe9"
    with pytest.raises(InvalidEncoding):
        encode("ç", Encoding.GSM7)
    with pytest.raises(InvalidEncoding):
        encode("x\ud800", Encoding.UCS2)
    with pytest.raises(InvalidEncoding):
        encode("x", Encoding.BINARY)


def test_decode_gsm() -> None:
    assert decode(b"\x00\x02\x11Hi", 0) == "@$_Hi"
    assert decode(b"\x1b\x65 \x1b\x3c", 0) == "€ ["
    assert decode(b"a\x1b\x41b", 0) == "aAb"  # unknown escape shows the basic character (23.038)
    assert decode(b"a\x1b\x1bb", 0) == "a b"  # ESC ESC shows a space
    assert decode(b"ab\x1b", 0) == "ab"  # a lone trailing escape carries nothing
    assert decode(b"a\x80\xffb", 0) == "a??b"
    assert decode(b"\x1b\x80", 0) == "?"
    assert decode(b"", 0) == ""


def test_decode_other_codings() -> None:
    assert decode(b"Hi \x80", 1) == "Hi ?"
    assert decode("café".encode("latin-1"), 3) == "café"
    assert decode("hé😀".encode("utf-16-be"), 8) == "hé😀"
    assert decode(b"\x00h\x00", 8) == "h\ufffd"  # odd trailing byte
    assert decode(b"\xd8\x3d", 8) == "\ufffd"  # lone surrogate
    assert decode("Привет".encode("iso8859_5"), 6) == "Привет"
    assert decode(b"Hi", 0xF0) == "Hi"  # GSM-7, class 0
    assert decode(b"\x00h", 0x18) == "h"  # general group, UCS-2
    for binary in (2, 4, 0xF4, 0x04 | 0x10):
        with pytest.raises(InvalidEncoding):
            decode(b"\x01\x02", binary)
    with pytest.raises(InvalidEncoding):
        decode(b"x", 0x20)  # compressed


@FAST
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=255))
def test_decode_never_crashes(payload: bytes, data_coding: int) -> None:
    try:
        result = decode(payload, data_coding)
    except InvalidEncoding:
        return
    assert isinstance(result, str)


@FAST
@given(st.text(alphabet=st.sampled_from(GSM_ALPHABET), max_size=400))
def test_gsm_round_trip(text: str) -> None:
    assert is_gsm7(text)
    data = encode(text, Encoding.GSM7)
    assert data == text.encode("gsm03.38")
    assert len(data) == septets(text)
    assert decode(data, 0) == text


@FAST
@given(st.text(max_size=200))
def test_gsm_agrees_with_codec(text: str) -> None:
    try:
        text.encode("gsm03.38")
        codec_ok = "\x1b" not in text
    except UnicodeEncodeError:
        codec_ok = False
    assert is_gsm7(text) is codec_ok
    assert (non_gsm_characters(text) == []) is codec_ok


@FAST
@given(st.text(max_size=200))
def test_ucs2_round_trip(text: str) -> None:
    data = encode(text, Encoding.UCS2)
    assert len(data) == 2 * ucs2_units(text)
    assert decode(data, 8) == text


def test_gsm_rewrite() -> None:
    assert gsm_rewrite("plain text") == "plain text"
    assert gsm_rewrite("It’s ‘quoted’") == "It's 'quoted'"
    assert gsm_rewrite("“Hi” „Hallo“ «Salut»") == '"Hi" "Hallo" "Salut"'
    assert gsm_rewrite("a – b — c − d") == "a - b - c - d"
    assert gsm_rewrite("Wait…") == "Wait..."
    assert gsm_rewrite("10\u00a0km\u202f!") == "10 km !"
    assert gsm_rewrite("• one\t• two") == "- one - two"
    assert gsm_rewrite("soft\u00adhyphen\u200b") == "softhyphen"
    assert gsm_rewrite("ça") == "ça"  # letters are not guessed
    typographic = "“Don’t” – it’s 5\u00a0€… • ok"
    assert is_gsm7(gsm_rewrite(typographic))
