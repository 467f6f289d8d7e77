from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgate.core.concat import parse_udh
from smsgate.core.encoding import EXTENSION_CHARACTERS, GSM_CHARACTERS, Encoding, decode, septets, ucs2_units
from smsgate.core.segments import Segmentation, segment_binary, segment_text
from smsgate.errors import EmptyText, InvalidEncoding, TextTooLong

FAST = settings(max_examples=120, deadline=None)
GSM_ALPHABET = sorted(GSM_CHARACTERS)
EXTENSION = sorted(EXTENSION_CHARACTERS)

gsm_text = st.text(alphabet=st.sampled_from(GSM_ALPHABET), min_size=1, max_size=700)
extension_heavy = st.text(alphabet=st.sampled_from([*EXTENSION, "a", "é"]), min_size=1, max_size=500)
emoji_heavy = st.text(
    alphabet=st.one_of(st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF), st.sampled_from("aé€ж")),
    min_size=1,
    max_size=300,
)
any_text = st.text(min_size=1, max_size=500)
texts = st.one_of(gsm_text, extension_heavy, emoji_heavy, any_text)


def packed_octets(udh: bytes, septet_count: int) -> int:
    """Octets on the air for GSM-7: UDH, fill bits to a septet boundary, packed septets."""
    udh_bits = len(udh) * 8
    fill = (7 - udh_bits % 7) % 7
    return math.ceil((udh_bits + fill + septet_count * 7) / 8)


def check(text: str, seg: Segmentation, *, ref16: bool = False) -> None:
    assert "".join(p.text or "" for p in seg.parts) == text
    assert seg.count == len(seg.parts) >= 1
    gsm = seg.encoding is Encoding.GSM7
    assert seg.data_coding == (0 if gsm else 8)
    assert seg.units == (septets(text) if gsm else ucs2_units(text))
    single, per_part = (160, 152 if ref16 else 153) if gsm else (70, 66 if ref16 else 67)
    capacity = single if seg.count == 1 else per_part
    assert 0 <= seg.remaining_in_last_part <= capacity
    for i, part in enumerate(seg.parts, 1):
        assert (part.index, part.total) == (i, seg.count)
        assert part.text
        assert decode(part.payload, seg.data_coding) == part.text
        if gsm:
            assert packed_octets(part.udh, len(part.payload)) <= 140
            assert len(part.payload) <= capacity
            assert part.payload[-1] != 0x1B
        else:
            assert len(part.payload) % 2 == 0
            assert len(part.udh) + len(part.payload) <= 140
            assert not 0xD8 <= part.payload[-2] <= 0xDB
        if seg.count == 1:
            assert part.udh == b""
        else:
            info = parse_udh(part.udh)
            assert info is not None
            assert (info.total, info.seq) == (seg.count, i)
            assert len(part.udh) == (7 if ref16 else 6)
    last_units = len(seg.parts[-1].payload) // (1 if gsm else 2)
    assert seg.remaining_in_last_part == capacity - last_units


@FAST
@given(texts, st.booleans(), st.integers(min_value=0, max_value=70000))
def test_segmentation_properties(text: str, ref16: bool, reference: int) -> None:
    seg = segment_text(text, reference=reference, reference_16bit=ref16)
    check(text, seg, ref16=ref16)
    if seg.count > 1:
        info = parse_udh(seg.parts[0].udh)
        assert info is not None
        assert info.ref == reference & (0xFFFF if ref16 else 0xFF)


@FAST
@given(
    st.text(
        alphabet=st.sampled_from([c for c in GSM_ALPHABET if c not in EXTENSION_CHARACTERS]), min_size=1, max_size=1200
    ),
    st.booleans(),
)
def test_gsm_part_counts_match_the_table(text: str, ref16: bool) -> None:
    assert_counts(text, ref16, Encoding.GSM7, single=160, per_part=152 if ref16 else 153)


def assert_counts(text: str, ref16: bool, encoding: Encoding, *, single: int, per_part: int) -> None:
    """One part up to ``single`` characters, else ``per_part`` characters a part (the UDH takes the rest)."""
    seg = segment_text(text, reference_16bit=ref16)
    assert seg.encoding is encoding
    assert seg.count == (1 if len(text) <= single else math.ceil(len(text) / per_part))


@FAST
@given(
    st.text(alphabet=st.characters(min_codepoint=0x400, max_codepoint=0x4FF), min_size=1, max_size=500), st.booleans()
)
def test_ucs2_part_counts_match_the_table(text: str, ref16: bool) -> None:
    assert_counts(text, ref16, Encoding.UCS2, single=70, per_part=66 if ref16 else 67)


@FAST
@given(st.one_of(gsm_text, any_text))
def test_forced_ucs2_always_works(text: str) -> None:
    seg = segment_text(text, encoding=Encoding.UCS2)
    assert seg.encoding is Encoding.UCS2
    check(text, seg)


@pytest.mark.parametrize(
    ("length", "parts", "remaining"),
    [(1, 1, 159), (160, 1, 0), (161, 2, 153 * 2 - 161), (306, 2, 0), (307, 3, 152), (459, 3, 0), (460, 4, 152)],
)
def test_gsm_boundaries(length: int, parts: int, remaining: int) -> None:
    seg = segment_text("a" * length)
    assert (seg.encoding, seg.count, seg.units, seg.remaining_in_last_part) == (
        Encoding.GSM7,
        parts,
        length,
        remaining,
    )
    check("a" * length, seg)


@pytest.mark.parametrize(("length", "parts"), [(70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)])
def test_ucs2_boundaries(length: int, parts: int) -> None:
    text = "ж" * length
    seg = segment_text(text)
    assert (seg.encoding, seg.count) == (Encoding.UCS2, parts)
    if parts > 1:
        assert [len(p.payload) // 2 for p in seg.parts[:-1]] == [67] * (parts - 1)
    check(text, seg)


def test_sixteen_bit_boundaries() -> None:
    assert segment_text("a" * 304, reference_16bit=True).count == 2
    assert segment_text("a" * 305, reference_16bit=True).count == 3
    assert segment_text("ж" * 132, reference_16bit=True).count == 2
    assert segment_text("ж" * 133, reference_16bit=True).count == 3


def test_extension_char_straddling_the_border() -> None:
    text = "a" * 152 + "€" + "b" * 10  # € would occupy septets 153 and 154
    seg = segment_text(text)
    assert seg.units == 164
    assert [len(p.payload) for p in seg.parts] == [152, 12]
    assert seg.parts[0].text == "a" * 152
    assert seg.parts[1].text == "€" + "b" * 10
    assert seg.parts[1].payload[:2] == b"\x1b\x65"
    check(text, seg)


def test_extension_char_exactly_fits() -> None:
    seg = segment_text("a" * 151 + "€" + "b" * 10)
    assert [len(p.payload) for p in seg.parts] == [153, 10]
    assert seg.parts[0].text == "a" * 151 + "€"


def test_single_part_with_extension_chars() -> None:
    assert segment_text("€" * 80).count == 1
    assert segment_text("€" * 81).count == 2  # 162 septets


def test_emoji_at_the_ucs2_border() -> None:
    text = "ж" * 66 + "😀" + "ж" * 10  # the surrogate pair would span units 67 and 68
    seg = segment_text(text)
    assert [len(p.payload) // 2 for p in seg.parts] == [66, 12]
    assert seg.parts[0].text == "ж" * 66
    assert seg.parts[1].text == "😀" + "ж" * 10
    check(text, seg)


def test_cedilla() -> None:
    lower = segment_text("ça va")
    assert lower.encoding is Encoding.UCS2
    assert lower.non_gsm_characters == ("ç",)
    upper = segment_text("Ça va")
    assert upper.encoding is Encoding.GSM7
    assert upper.non_gsm_characters == ()


def test_forced_encodings() -> None:
    seg = segment_text("hello", encoding=Encoding.UCS2)
    assert seg.encoding is Encoding.UCS2
    assert seg.data_coding == 8
    assert seg.parts[0].payload == "hello".encode("utf-16-be")
    assert seg.non_gsm_characters == ()
    assert seg.remaining_in_last_part == 65
    with pytest.raises(InvalidEncoding):
        segment_text("ça", encoding=Encoding.GSM7)


def test_refusals() -> None:
    with pytest.raises(EmptyText):
        segment_text("")
    with pytest.raises(TextTooLong, match="255"):
        segment_text("a" * (153 * 255 + 1))
    assert segment_text("a" * (153 * 255)).count == 255
    with pytest.raises(TextTooLong, match="255"):
        segment_text("a" * 10_000_000)
    with pytest.raises(TextTooLong, match="6"):
        segment_text("a" * (153 * 6 + 1), max_parts=6)
    with pytest.raises(TextTooLong, match="1000"):
        segment_text("a" * 1001, max_chars=1000)
    assert segment_text("a" * 1000, max_chars=1000).count == 7
    with pytest.raises(TextTooLong):
        segment_text("a" * 300, max_parts=1)
    # cuts moved back by escape pairs can push a text over the limit
    with pytest.raises(TextTooLong):
        segment_text(("a" * 152 + "€") * 2, max_parts=2)


def test_udh_bytes() -> None:
    seg = segment_text("a" * 200, reference=0x1234)
    assert [p.udh for p in seg.parts] == [bytes.fromhex("0500033402") + bytes([i]) for i in (1, 2)]
    seg16 = segment_text("a" * 400, reference=0x1234, reference_16bit=True)
    assert [p.udh for p in seg16.parts] == [bytes.fromhex("060804123403") + bytes([i]) for i in (1, 2, 3)]
    masked = segment_text("a" * 200, reference=0x12345, reference_16bit=True)
    assert masked.parts[0].udh[3:5] == b"\x23\x45"


def test_binary_single_and_split() -> None:
    seg = segment_binary(b"\x01" * 140)
    assert (seg.encoding, seg.data_coding, seg.count, seg.units) == (Encoding.BINARY, 4, 1, 140)
    assert seg.parts[0].udh == b"" and seg.parts[0].text is None
    assert seg.remaining_in_last_part == 0

    seg = segment_binary(bytes(range(256)) + b"x" * 44, reference=7)  # 300 octets
    assert [len(p.payload) for p in seg.parts] == [134, 134, 32]
    assert b"".join(p.payload for p in seg.parts) == bytes(range(256)) + b"x" * 44
    assert [p.udh for p in seg.parts] == [bytes([5, 0, 3, 7, 3, i]) for i in (1, 2, 3)]
    assert seg.remaining_in_last_part == 102

    seg16 = segment_binary(b"y" * 300, reference=0xABCD, reference_16bit=True)
    assert [len(p.payload) for p in seg16.parts] == [133, 133, 34]
    assert seg16.parts[0].udh == bytes([6, 8, 4, 0xAB, 0xCD, 3, 1])


def test_binary_user_udh() -> None:
    port_udh = bytes([6, 5, 4, 0x0B, 0x84, 0x23, 0xF0])  # WAP push port addressing
    single = segment_binary(b"z" * 133, udh=port_udh)
    assert single.count == 1 and single.parts[0].udh == port_udh
    seg = segment_binary(b"z" * 200, udh=port_udh, reference=9)
    merged = bytes([11, 0, 3, 9, 2, 1, 5, 4, 0x0B, 0x84, 0x23, 0xF0])
    assert seg.parts[0].udh == merged
    assert [len(p.payload) for p in seg.parts] == [128, 72]
    for p in seg.parts:
        assert len(p.udh) + len(p.payload) <= 140
        assert p.udh[0] == len(p.udh) - 1
    # a client concat IE is replaced by ours when we split
    seg = segment_binary(b"z" * 200, udh=bytes([5, 0, 3, 1, 1, 1]), reference=2)
    assert seg.parts[1].udh == bytes([5, 0, 3, 2, 2, 2])


def test_binary_refusals() -> None:
    with pytest.raises(EmptyText):
        segment_binary(b"")
    with pytest.raises(InvalidEncoding):
        segment_binary(b"x", udh=bytes([9, 0, 3]))
    with pytest.raises(InvalidEncoding):
        segment_binary(b"x" * 200, udh=bytes([139, 0x70, 137]) + b"\x00" * 137)
    with pytest.raises(TextTooLong):
        segment_binary(b"x" * 141, max_parts=1)


@FAST
@given(st.binary(min_size=1, max_size=2000), st.booleans())
def test_binary_properties(body: bytes, ref16: bool) -> None:
    seg = segment_binary(body, reference_16bit=ref16)
    assert b"".join(p.payload for p in seg.parts) == body
    for p in seg.parts:
        assert len(p.udh) + len(p.payload) <= 140
        if seg.count > 1:
            info = parse_udh(p.udh)
            assert info is not None and (info.seq, info.total) == (p.index, seg.count)
