"""Sender addresses (``from`` / ``sender``) and the SMPP TON/NPI they travel with.

Networks silently rewrite or drop senders they cannot carry, so we refuse doubtful ones up front
with a message that says what to change.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Collection
from dataclasses import dataclass

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

from smsgate.core.encoding import GSM_CHARACTERS
from smsgate.errors import InvalidSender, SenderNotAllowed

__all__ = ["Sender", "SenderType", "check_allowed", "parse_sender"]


class SenderType(str, enum.Enum):  # noqa: UP042  (the agreed API is a str mix-in Enum)
    """What kind of address the sender is; decides TON/NPI."""

    ALPHANUMERIC = "alphanumeric"
    INTERNATIONAL = "international"
    NATIONAL = "national"
    SHORTCODE = "shortcode"


@dataclass(frozen=True, slots=True)
class Sender:
    """A checked sender: numeric values carry digits only (no "+")."""

    value: str
    type: SenderType
    ton: int
    npi: int


_TON_NPI: dict[SenderType, tuple[int, int]] = {
    SenderType.ALPHANUMERIC: (5, 0),
    SenderType.INTERNATIONAL: (1, 1),
    SenderType.NATIONAL: (2, 1),
    SenderType.SHORTCODE: (3, 0),
}

MAX_NUMERIC = 15  # E.164
# Letters of the GSM default alphabet (including Ä, é, ß, Δ …), ASCII digits and a few punctuation
# marks that every network passes through (no "@": it is septet 0x00, a NUL on many links).
_LETTERS = frozenset(c for c in GSM_CHARACTERS if c.isalpha())
_ALLOWED = _LETTERS | frozenset("0123456789 -_.&+'!?,:()")
_SEPARATORS_RE = re.compile(r"[\s\-.()]+")
_NUMERIC_RE = re.compile(r"\+?[0-9]+")
_ANY_LETTER_RE = re.compile(r"[^\W\d_]")  # any Unicode letter makes it alphanumeric
_COUNTRY_CODES = frozenset(str(code) for code in COUNTRY_CODE_TO_REGION_CODE)


def _make(value: str, kind: SenderType) -> Sender:
    ton, npi = _TON_NPI[kind]
    return Sender(value, kind, ton, npi)


def _has_country_code(digits: str) -> bool:
    return any(digits[:size] in _COUNTRY_CODES for size in (1, 2, 3))


@functools.lru_cache(maxsize=4096)
def parse_sender(raw: str, *, max_alphanumeric: int = 11) -> Sender:
    """Classify and check a sender: alphanumeric (≤ 11), short code (3–8 digits) or phone number (≤ 15).
    Cached (a ``Sender`` is immutable): a message's sender is parsed at accept and again at dispatch, and an
    account sends from a few senders, so the regexes and the dataclass were ~2 % of a send's CPU. A refused
    sender raises again each time (exceptions are not cached)."""
    value = raw.strip()
    if not value:
        raise InvalidSender("The sender is empty.")
    if _ANY_LETTER_RE.search(value):
        return _alphanumeric(value, max_alphanumeric)
    compact = _SEPARATORS_RE.sub("", value)
    if not _NUMERIC_RE.fullmatch(compact):
        raise InvalidSender(
            f"The sender {value!r} must contain a letter, or be a number of digits with an optional '+'."
        )
    international = compact.startswith(("+", "00"))
    digits = compact[1:] if compact.startswith("+") else compact[2:] if international else compact
    if len(digits) > MAX_NUMERIC:
        raise InvalidSender(f"The numeric sender is too long: at most {MAX_NUMERIC} digits.")
    if international:
        if len(digits) < 7 or digits[0] == "0" or not _has_country_code(digits):
            raise InvalidSender(f"The sender {value!r} is not an international number with a country code.")
        return _make(digits, SenderType.INTERNATIONAL)
    if len(digits) < 3:
        raise InvalidSender("A numeric sender needs at least 3 digits (short code) or a full phone number.")
    if len(digits) <= 8:
        return _make(digits, SenderType.SHORTCODE)
    if digits[0] != "0" and _has_country_code(digits):
        return _make(digits, SenderType.INTERNATIONAL)
    return _make(digits, SenderType.NATIONAL)


def _alphanumeric(value: str, limit: int) -> Sender:
    if len(value) > limit:
        raise InvalidSender(f"The sender {value!r} is too long: at most {limit} characters.")
    if not _ALLOWED.issuperset(value):
        bad = "".join(sorted(set(value) - _ALLOWED, key=value.index))
        raise InvalidSender(
            f"The sender {value!r} contains characters networks do not carry: {bad!r}. "
            "Use letters, digits, spaces and - _ . & + ' ! ? , : ( )."
        )
    return _make(value, SenderType.ALPHANUMERIC)


def check_allowed(sender: Sender, allowed: Collection[str] | None) -> None:
    """Refuse a sender the account may not use; None allows all (alphanumeric compares case-blind)."""
    if allowed is None or sender.value in allowed:
        return
    if sender.type is SenderType.ALPHANUMERIC:
        wanted = sender.value.casefold()
        if any(entry.casefold() == wanted for entry in allowed):
            return
    else:
        for entry in allowed:
            compact = _SEPARATORS_RE.sub("", entry)
            if compact.removeprefix("+") == sender.value or (compact.startswith("00") and compact[2:] == sender.value):
                return
    raise SenderNotAllowed(f"The sender {sender.value!r} is not allowed for this account.")
