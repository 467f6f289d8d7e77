from __future__ import annotations

from collections.abc import Callable

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smsgate.core.numbers import Number, country_allowed, parse_dutch_mobile, parse_international
from smsgate.errors import DestinationNotAllowed, InvalidNumber

FAST = settings(max_examples=200, deadline=None)


@pytest.mark.parametrize(
    "raw",
    [
        "0612345678",
        "06-12345678",
        "06 1234 5678",
        "06.12.34.56.78",
        "(06) 12345678",
        "+31612345678",
        "+31 6 12345678",
        "+31 (0)6 12345678",
        "0031612345678",
        "0031 6 1234 5678",
        "31612345678",
        " 06-1234 5678 ",
    ],
)
def test_dutch_formats_normalise(raw: str) -> None:
    assert parse_dutch_mobile(raw) == Number("+31612345678", "NL", "mobile")


@pytest.mark.parametrize("raw", ["0612345678", "0622345678", "0632345678", "0642345678", "0652345678", "0682345678"])
def test_dutch_mobile_ranges(raw: str) -> None:
    number = parse_dutch_mobile(raw)
    assert number.kind == "mobile" and number.country == "NL"
    assert number.e164 == "+31" + raw[1:]
    assert number.digits == "31" + raw[1:]


@pytest.mark.parametrize("raw", ["097012345678", "+3197010240299", "0031 970 1234 5678", "3197012345678"])
def test_dutch_m2m(raw: str) -> None:
    number = parse_dutch_mobile(raw)
    assert number.kind == "mobile"
    assert len(number.e164) == 14


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("06-CALLME", "not_a_number"),
        ("tel:+31612345678", "not_a_number"),
        ("+31 6 1234567x", "not_a_number"),
        ("++31612345678", "not_a_number"),
        ("0601234567", "unassigned_range"),
        ("0671234567", "unassigned_range"),
        ("0691234567", "unassigned_range"),
        ("+31601234567", "unassigned_range"),
        ("0661234567", "pager"),
        ("+31661234567", "pager"),
        ("0101234567", "fixed_line"),
        ("0201234567", "fixed_line"),
        ("+31 30 123 4567", "fixed_line"),
        ("+32475123456", "not_dutch"),
        ("+4915123456789", "not_dutch"),
        ("0049 151 23456789", "not_dutch"),
        ("447400123456", "not_dutch"),
        ("+1 201 555 0123", "not_dutch"),
        ("061234567", "too_short"),
        ("06", "too_short"),
        ("+31", "too_short"),
        ("0", "too_short"),
        ("+3161234567", "too_short"),
        ("06123456789", "too_long"),
        ("+316123456789", "too_long"),
        ("09701234567", "too_short"),
        ("0970123456789", "too_long"),
        ("097123456789", "unassigned_range"),
        ("0800 1234", "not_mobile"),
        ("0900 1234567", "not_mobile"),
        ("088 123 4567", "not_mobile"),
        ("06" + "1" * 40, "too_long"),
    ],
)
def test_dutch_refusals(raw: str, reason: str) -> None:
    assert_refused(parse_dutch_mobile, raw, reason)


def assert_refused(parse: Callable[[str], Number], raw: str, reason: str) -> None:
    """``parse`` refuses ``raw`` with this reason, and says why in words."""
    with pytest.raises(InvalidNumber) as info:
        parse(raw)
    assert info.value.reason == reason
    assert info.value.message


@FAST
@given(st.text(max_size=30))
def test_dutch_parser_only_raises_invalid_number(raw: str) -> None:
    try:
        number = parse_dutch_mobile(raw)
    except InvalidNumber:
        return
    assert number.kind == "mobile" and number.country == "NL"


@FAST
@given(st.from_regex(r"(?:6[0-9]|97[0-9])[0-9]{5,10}", fullmatch=True))
def test_dutch_rule_matches_libphonenumber(nsn: str) -> None:
    parsed = phonenumbers.parse("+31" + nsn)
    expected = phonenumbers.is_valid_number(parsed) and (
        phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.MOBILE
    )
    try:
        parse_dutch_mobile("0" + nsn)
        accepted = True
    except InvalidNumber:
        accepted = False
    assert accepted is expected


INTERNATIONAL_VALID = [
    ("+31612345678", "+31612345678", "NL", "mobile"),
    ("31612345678", "+31612345678", "NL", "mobile"),
    ("0031612345678", "+31612345678", "NL", "mobile"),
    ("+31 (0)6 12345678", "+31612345678", "NL", "mobile"),
    ("+31101234567", "+31101234567", "NL", "fixed_line"),
    ("+32450001234", "+32450001234", "BE", "mobile"),
    ("32 475 12 34 56", "+32475123456", "BE", "mobile"),
    ("+4915123456789", "+4915123456789", "DE", "mobile"),
    ("004930123456", "+4930123456", "DE", "fixed_line"),
    ("+33612345678", "+33612345678", "FR", "mobile"),
    ("447400123456", "+447400123456", "GB", "mobile"),
    ("+44 121 234 5678", "+441212345678", "GB", "fixed_line"),
    ("12015550123", "+12015550123", "US", "fixed_line_or_mobile"),
    ("+1 506 234 5678", "+15062345678", "CA", "fixed_line_or_mobile"),
    ("+34612345678", "+34612345678", "ES", "mobile"),
    ("+393123456789", "+393123456789", "IT", "mobile"),
    ("390212345678", "+390212345678", "IT", "fixed_line"),
    ("+48512345678", "+48512345678", "PL", "mobile"),
    ("46701234567", "+46701234567", "SE", "mobile"),
    ("+4740612345", "+4740612345", "NO", "mobile"),
    ("+41781234567", "+41781234567", "CH", "mobile"),
    ("0043664123456", "+43664123456", "AT", "mobile"),
    ("+353850123456", "+353850123456", "IE", "mobile"),
    ("351912345678", "+351912345678", "PT", "mobile"),
    ("+5511961234567", "+5511961234567", "BR", "mobile"),
    ("573211234567", "+573211234567", "CO", "mobile"),
    ("+918123456789", "+918123456789", "IN", "mobile"),
    ("8613123456789", "+8613123456789", "CN", "mobile"),
    ("+819012345678", "+819012345678", "JP", "mobile"),
    ("61412345678", "+61412345678", "AU", "mobile"),
    ("+61 (0)412 345 678", "+61412345678", "AU", "mobile"),  # trunk zero dropped
    ("+27711234567", "+27711234567", "ZA", "mobile"),
    ("2348021234567", "+2348021234567", "NG", "mobile"),
    ("+254712123456", "+254712123456", "KE", "mobile"),
    ("+905012345678", "+905012345678", "TR", "mobile"),
    ("+380501234567", "+380501234567", "UA", "mobile"),
    ("971501234567", "+971501234567", "AE", "mobile"),
    ("+6581234567", "+6581234567", "SG", "mobile"),
    ("+212650123456", "+212650123456", "MA", "mobile"),
    ("+972502345678", "+972502345678", "IL", "mobile"),
    ("+420601123456", "+420601123456", "CZ", "mobile"),
    ("40712034567", "+40712034567", "RO", "mobile"),
]


@pytest.mark.parametrize(("raw", "e164", "country", "kind"), INTERNATIONAL_VALID)
def test_international_valid(raw: str, e164: str, country: str, kind: str) -> None:
    assert parse_international(raw) == Number(e164, country, kind)


INTERNATIONAL_INVALID = [
    ("", "empty"),
    ("  ", "empty"),
    ("hello", "not_a_number"),
    ("+31 6 CALL ME", "not_a_number"),
    ("+4915123456789x", "not_a_number"),
    ("0612345678", "no_country_code"),
    ("0201234567", "no_country_code"),
    ("+0612345678", "no_country_code"),
    ("000612345678", "no_country_code"),
    ("+999123456789", "no_country_code"),
    ("+2", "too_short"),
    ("+31", "too_short"),
    ("3161234567", "invalid"),  # 06 + 7 digits: no such Dutch number
    ("+31601234567", "invalid"),
    ("+4912", "too_short"),
    ("+44123", "too_short"),
    ("+1201555012", "too_short"),
    ("+120155501234", "too_long"),
    ("+33 6 1234 5678 9", "too_long"),
    ("+1" + "2" * 30, "too_long"),
    ("+11234567890", "invalid"),  # NANP area codes never start with 1
    ("+4400000000000", "invalid"),
]


@pytest.mark.parametrize(("raw", "reason"), INTERNATIONAL_INVALID)
def test_international_invalid(raw: str, reason: str) -> None:
    assert_refused(parse_international, raw, reason)


@FAST
@given(st.one_of(st.text(max_size=25), st.from_regex(r"\+?[0-9]{1,20}", fullmatch=True)))
def test_international_only_raises_invalid_number(raw: str) -> None:
    try:
        number = parse_international(raw)
    except InvalidNumber:
        return
    assert number.e164.startswith("+") and number.digits.isdigit()
    assert phonenumbers.is_valid_number(phonenumbers.parse(number.e164))


def test_dutch_mobile_agrees_with_international() -> None:
    assert parse_dutch_mobile("0612345678") == parse_international("+31612345678")
    assert parse_dutch_mobile("097012345678") == parse_international("3197012345678")


def test_country_allowed() -> None:
    nl = parse_dutch_mobile("0612345678")
    country_allowed(nl, None)
    country_allowed(nl, ["NL"])
    country_allowed(nl, {"nl", "be"})
    country_allowed(nl, ("Be", "Nl"))
    with pytest.raises(DestinationNotAllowed, match="NL"):
        country_allowed(nl, ["BE", "DE"])
    with pytest.raises(DestinationNotAllowed):
        country_allowed(nl, [])
