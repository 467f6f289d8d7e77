from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgate.core.senders import Sender, SenderType, check_allowed, parse_sender
from smsgate.errors import InvalidSender, SenderNotAllowed

A, INTL, N, S = SenderType.ALPHANUMERIC, SenderType.INTERNATIONAL, SenderType.NATIONAL, SenderType.SHORTCODE


@pytest.mark.parametrize(
    ("raw", "value", "kind", "ton", "npi"),
    [
        ("KPN API", "KPN API", A, 5, 0),
        ("Nexmo CLI", "Nexmo CLI", A, 5, 0),
        ("ACME", "ACME", A, 5, 0),
        ("X", "X", A, 5, 0),
        ("Shop24", "Shop24", A, 5, 0),
        ("24Shop", "24Shop", A, 5, 0),
        ("A&B Co.", "A&B Co.", A, 5, 0),
        ("Café-Ré", "Café-Ré", A, 5, 0),
        ("  Padded  ", "Padded", A, 5, 0),
        ("ElevenChars", "ElevenChars", A, 5, 0),
        ("+31612345678", "31612345678", INTL, 1, 1),
        ("0031612345678", "31612345678", INTL, 1, 1),
        ("31612345678", "31612345678", INTL, 1, 1),
        ("447700900123", "447700900123", INTL, 1, 1),
        ("+1 201-555-0123", "12015550123", INTL, 1, 1),
        ("0612345678", "0612345678", N, 2, 1),
        ("999999999", "999999999", N, 2, 1),
        ("7349", "7349", S, 3, 0),
        ("123", "123", S, 3, 0),
        ("12345678", "12345678", S, 3, 0),
        ("123456789012345", "123456789012345", INTL, 1, 1),
    ],
)
def test_parse_sender(raw: str, value: str, kind: SenderType, ton: int, npi: int) -> None:
    assert parse_sender(raw) == Sender(value, kind, ton, npi)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("TwelveCharsX", "too long"),
        ("1234567890123456", "too long"),
        ("+1234567890123456", "too long"),
        ("12", "at least 3"),
        ("Shop@Home", "@"),
        ("Hi😀", "😀"),
        ("ça va", "ç"),
        ("Привет", "Приве"),
        ("A{B}", "{"),
        ("12-34#", "letter"),
        ("+0612345", "country code"),
        ("+12", "country code"),
    ],
)
def test_refused_senders(raw: str, match: str) -> None:
    with pytest.raises(InvalidSender, match=match):
        parse_sender(raw)


def test_max_alphanumeric() -> None:
    assert parse_sender("Fifteen Chars!", max_alphanumeric=15).value == "Fifteen Chars!"
    with pytest.raises(InvalidSender):
        parse_sender("ABCDEF", max_alphanumeric=5)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_parse_sender_only_raises_invalid_sender(raw: str) -> None:
    try:
        sender = parse_sender(raw)
    except InvalidSender as exc:
        assert exc.message
        return
    assert sender.value
    if sender.type is not SenderType.ALPHANUMERIC:
        assert sender.value.isdigit() and len(sender.value) <= 15
    else:
        assert len(sender.value) <= 11


def test_check_allowed() -> None:
    alpha = parse_sender("MyShop")
    check_allowed(alpha, None)
    check_allowed(alpha, ["MyShop"])
    check_allowed(alpha, {"myshop"})
    check_allowed(alpha, ["MYSHOP", "Other"])
    with pytest.raises(SenderNotAllowed):
        check_allowed(alpha, ["Other"])
    with pytest.raises(SenderNotAllowed):
        check_allowed(alpha, [])
    number = parse_sender("+31612345678")
    check_allowed(number, ["31612345678"])
    check_allowed(number, ["+31612345678"])
    check_allowed(number, ["0031 6 12345678"])
    with pytest.raises(SenderNotAllowed):
        check_allowed(number, ["+31612345679"])
    code = parse_sender("7349")
    check_allowed(code, ["7349"])
    with pytest.raises(SenderNotAllowed):
        check_allowed(code, ["73490"])
