from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgate.core.concat import ConcatInfo, concat_ie, information_elements, parse_udh, strip_udh
from smsgate.core.segments import segment_binary, segment_text

FAST = settings(max_examples=200, deadline=None)


@pytest.mark.parametrize(
    ("udh", "expected"),
    [
        (bytes.fromhex("050003A50301"), ConcatInfo(0xA5, 3, 1)),
        (bytes.fromhex("0608041234020 2".replace(" ", "")), ConcatInfo(0x1234, 2, 2)),
        # port addressing IE first, then concat
        (bytes.fromhex("0B05040B8423F0000309 0201".replace(" ", "")), ConcatInfo(9, 2, 1)),
        (bytes.fromhex("0B00030902010504 0B8423F0".replace(" ", "")), ConcatInfo(9, 2, 1)),
        (bytes.fromhex("06050415811581"), None),  # ports only
        (b"", None),
        (bytes.fromhex("05000301"), None),  # declared 5, only 3 follow
        (bytes.fromhex("050004A50301"), None),  # IE length runs past the header
        (bytes.fromhex("0400020301"), None),  # 8-bit IE with wrong length
        (bytes.fromhex("050003A50300"), None),  # seq 0
        (bytes.fromhex("050003A50304"), None),  # seq > total
        (bytes.fromhex("050003A50001"), None),  # total 0
        (bytes.fromhex("0100"), None),  # IE header cut short
    ],
)
def test_parse_udh(udh: bytes, expected: ConcatInfo | None) -> None:
    assert parse_udh(udh) == expected


def test_parse_udh_ignores_trailing_user_data() -> None:
    assert parse_udh(bytes.fromhex("050003010201") + b"hello") == ConcatInfo(1, 2, 1)


def test_concat_ie() -> None:
    assert concat_ie(0x1FF, 3, 2) == bytes([0, 3, 0xFF, 3, 2])
    assert concat_ie(0x1ABCD, 3, 2, ref_16bit=True) == bytes([8, 4, 0xAB, 0xCD, 3, 2])


def test_information_elements() -> None:
    assert information_elements(bytes.fromhex("0B05040B8423F0000309 0201".replace(" ", ""))) == [
        (5, bytes.fromhex("0B8423F0")),
        (0, bytes.fromhex("090201")),
    ]
    assert information_elements(b"\x00") == []


def test_strip_udh() -> None:
    assert strip_udh(bytes.fromhex("050003010201") + b"hi") == (bytes.fromhex("050003010201"), b"hi")
    assert strip_udh(bytes.fromhex("050003010201")) == (bytes.fromhex("050003010201"), b"")
    assert strip_udh(b"") == (b"", b"")
    assert strip_udh(b"\x09abc") == (b"", b"\x09abc")  # malformed: delivered unchanged


def test_round_trip_with_segmenter() -> None:
    for ref16 in (False, True):
        seg = segment_text("x" * 500, reference=300, reference_16bit=ref16)
        for part in seg.parts:
            udh, payload = strip_udh(part.udh + part.payload)
            assert (udh, payload) == (part.udh, part.payload)
            assert parse_udh(udh) == ConcatInfo(300 if ref16 else 300 & 0xFF, seg.count, part.index)
    seg = segment_binary(b"b" * 300, udh=bytes.fromhex("0605040B8423F0"), reference=5)
    assert [parse_udh(p.udh) for p in seg.parts] == [ConcatInfo(5, 3, i) for i in (1, 2, 3)]


@FAST
@given(st.binary(max_size=300))
def test_readers_never_raise(data: bytes) -> None:
    info = parse_udh(data)
    if info is not None:
        assert 1 <= info.seq <= info.total
    udh, payload = strip_udh(data)
    assert udh + payload == data
