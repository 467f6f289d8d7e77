"""Destination numbers: the KPN SMS v1 Dutch-mobile rule and international E.164 parsing.

Validity comes from libphonenumber's metadata (``phonenumbers``), never from hand-kept ranges, so a
metadata update follows the numbering plan. Each refusal carries a ``reason`` code that the dialects
translate into their own error format.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType, ValidationResult

from smsgate.errors import DestinationNotAllowed, InvalidNumber

__all__ = ["Number", "country_allowed", "parse_dutch_mobile", "parse_international"]


@dataclass(frozen=True, slots=True)
class Number:
    """A validated destination: E.164 with "+", ISO-2 country ("001" for non-geographic), type name."""

    e164: str
    country: str
    kind: str

    @property
    def digits(self) -> str:
        """E.164 without the "+", as SMPP and Vonage carry it."""
        return self.e164[1:]


KIND_NAMES: dict[int, str] = {value: name.lower() for name, value in vars(PhoneNumberType).items() if name.isupper()}

_IGNORED_RE = re.compile(r"[\s\-.()]+")
_NUMBER_RE = re.compile(r"\+?[0-9]+")
_MAX_DIGITS = 17  # libphonenumber's longest national number; anything longer is not worth parsing


def _nl_mobile_re() -> re.Pattern[str]:
    """NL mobile pattern from libphonenumber metadata: 06-1..06-5, 06-8 and 0970 (M2M)."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region("NL")
    assert metadata is not None and metadata.mobile is not None
    pattern = metadata.mobile.national_number_pattern
    assert pattern is not None
    return re.compile(pattern)


_NL_MOBILE_RE = _nl_mobile_re()


def _refuse(reason: str, message: str) -> InvalidNumber:
    return InvalidNumber(message, reason=reason)


def _clean(raw: str) -> str:
    """Drop separators (spaces, dashes, dots, parentheses); refuse empty or non-numeric input."""
    if not raw or not raw.strip():
        raise _refuse("empty", "The number is empty.")
    value = _IGNORED_RE.sub("", raw)
    if not _NUMBER_RE.fullmatch(value):
        raise _refuse("not_a_number", f"{raw.strip()!r} is not a phone number: use digits and an optional '+'.")
    return value


def parse_dutch_mobile(raw: str) -> Number:
    """KPN SMS v1: a Dutch mobile number (06-1..5, 06-8 or 097 M2M) in 06, +316, 00316 or 316 form."""
    value = _clean(raw)
    if value.startswith("+"):
        international: str | None = value[1:]
    elif value.startswith("00"):
        international = value[2:]
    elif value.startswith("0"):
        international = None
        national = value[1:]
    else:
        international = value
    if international is not None:
        if not international.startswith("31"):
            if len(international) < 2:
                raise _refuse("too_short", "The number is too short for a Dutch mobile number.")
            raise _refuse("not_dutch", "Only Dutch mobile numbers (+31) are allowed: use 06…, +316…, 00316… or 316….")
        national = international[2:]
        if national.startswith("0"):  # "+31 (0)6 …": the trunk zero is not dialled after +31
            national = national[1:]
    return _dutch_mobile(national)


def _dutch_mobile(nsn: str) -> Number:
    """Classify a Dutch national significant number (without the trunk 0)."""
    if _NL_MOBILE_RE.fullmatch(nsn):
        return Number("+31" + nsn, "NL", "mobile")
    if len(nsn) < 2 or nsn == "97":
        raise _refuse("too_short", "The number is too short for a Dutch mobile number.")
    if nsn[0] == "6":
        if nsn[1] in "079":
            raise _refuse(
                "unassigned_range", f"06-{nsn[1]} numbers (060, 067, 069) are not valid Dutch mobile numbers."
            )
        if nsn[1] == "6":
            raise _refuse("pager", "066 numbers are pagers, not mobile phones.")
        if len(nsn) < 9:
            raise _refuse("too_short", "The number is too short: a Dutch 06 number has 10 digits.")
        if len(nsn) > 9:
            raise _refuse("too_long", "The number is too long: a Dutch 06 number has 10 digits.")
    elif nsn.startswith("970"):
        if len(nsn) < 11:
            raise _refuse("too_short", "The number is too short: a Dutch 097 number has 12 digits.")
        if len(nsn) > 11:
            raise _refuse("too_long", "The number is too long: a Dutch 097 number has 12 digits.")
    elif nsn.startswith("97") or nsn[0] == "0":
        raise _refuse("unassigned_range", "This is not a valid Dutch mobile number range.")
    if len(nsn) > 11:
        raise _refuse("too_long", "The number is too long for a Dutch number.")
    number = phonenumbers.PhoneNumber(country_code=31, national_number=int(nsn))
    if phonenumbers.is_valid_number(number):
        kind = phonenumbers.number_type(number)
        if kind == PhoneNumberType.FIXED_LINE:
            raise _refuse("fixed_line", "This is a Dutch landline number; SMS needs a mobile number.")
        if kind == PhoneNumberType.PAGER:
            raise _refuse("pager", "This is a Dutch pager number, not a mobile phone.")
        raise _refuse("not_mobile", f"This Dutch {KIND_NAMES.get(kind, 'unknown')} number is not a mobile number.")
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible == ValidationResult.TOO_SHORT:
        raise _refuse("too_short", "The number is too short for a Dutch number.")
    if possible == ValidationResult.TOO_LONG:
        raise _refuse("too_long", "The number is too long for a Dutch number.")
    raise _refuse("unassigned_range", "This is not a valid Dutch mobile number range.")


def parse_international(raw: str) -> Number:
    """Any valid number with its country code: +CC…, 00CC… or bare CC… (Vonage's ``to``)."""
    value = _clean(raw)
    if value.startswith("+"):
        digits = value[1:]
    elif value.startswith("00"):
        digits = value[2:]
    elif value.startswith("0"):
        raise _refuse("no_country_code", "The number is in national format: start it with the country code (e.g. 31…).")
    else:
        digits = value
    if not digits or digits[0] == "0":
        raise _refuse("no_country_code", "The number does not start with a country code.")
    if len(digits) > _MAX_DIGITS:
        raise _refuse("too_long", "The number is too long.")
    return _parse_e164_digits(digits)


@lru_cache(maxsize=16384)
def _parse_e164_digits(digits: str) -> Number:
    """libphonenumber costs ~50 µs a number; bulk sends repeat numbers, so valid ones are cached."""
    if len(digits) < 3:
        raise _refuse("too_short", "The number is too short.")
    try:
        number = phonenumbers.parse("+" + digits, None)
    except NumberParseException as exc:
        raise _parse_error(exc) from exc
    if not phonenumbers.is_valid_number(number):
        possible = phonenumbers.is_possible_number_with_reason(number)
        if possible in (ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
            raise _refuse("too_short", "The number is too short for its country.")
        if possible == ValidationResult.TOO_LONG:
            raise _refuse("too_long", "The number is too long for its country.")
        if possible == ValidationResult.INVALID_COUNTRY_CODE:
            raise _refuse("no_country_code", "The number does not start with a known country code.")
        raise _refuse("invalid", "The number is not valid for its country.")
    region = phonenumbers.region_code_for_number(number) or "ZZ"
    kind = KIND_NAMES.get(phonenumbers.number_type(number), "unknown")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return Number(e164, region, kind)


def _parse_error(exc: NumberParseException) -> InvalidNumber:
    if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE:
        return _refuse("no_country_code", "The number does not start with a known country code.")
    if exc.error_type in (NumberParseException.TOO_SHORT_NSN, NumberParseException.TOO_SHORT_AFTER_IDD):
        return _refuse("too_short", "The number is too short.")
    if exc.error_type == NumberParseException.TOO_LONG:
        return _refuse("too_long", "The number is too long.")
    return _refuse("not_a_number", "The number could not be read as a phone number.")


def country_allowed(number: Number, allowed: Collection[str] | None) -> None:
    """Refuse a destination outside the account's countries (ISO-2, any case); None allows all."""
    if allowed is None or number.country in allowed:
        return
    if any(code.upper() == number.country for code in allowed):
        return
    raise DestinationNotAllowed(f"Sending to {number.country} numbers is not enabled for this account.")
