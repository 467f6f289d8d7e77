"""core.handsets: reading one-time codes, script rules, behaviour switches (pure)."""

from __future__ import annotations

import time

import pytest

from smsgate import errors
from smsgate.core import handsets


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Your code is 482913.", "482913"),
        ("1234 is your code", "1234"),
        ("code:98765432", "98765432"),
        ("Call +31201234567, then use 4455", "4455"),  # a phone number is no code
        ("Order 123 costs 12,50; code 0042", "0042"),
        ("123456789 then nothing", None),  # nine digits: too long for a code
        ("no digits", None),
        ("", None),
    ],
)
def test_default_otp_pattern(text: str, code: str | None) -> None:
    assert handsets.otp(handsets.DEFAULT_OTP, text) == code


def test_otp_with_own_pattern() -> None:
    assert handsets.otp(handsets.compile_pattern(r"([A-Z]{3}-\d{3})", "p"), "use ABC-123 now") == "ABC-123"
    assert handsets.otp(handsets.compile_pattern(r"[A-Z]{3}-\d{3}", "p"), "use ABC-123 now") == "ABC-123"


def test_patterns_are_linear_time() -> None:
    started = time.perf_counter()
    assert handsets.otp(handsets.compile_pattern(r"(a*)*b", "p"), "a" * 50_000) is None
    assert time.perf_counter() - started < 1.0  # Python's re would backtrack for ages


def test_bad_patterns_name_the_field() -> None:
    with pytest.raises(errors.ValidationError, match=r"otp_pattern: not a pattern RE2 takes"):
        handsets.compile_pattern(r"(?<=a)b", "otp_pattern")
    with pytest.raises(errors.ValidationError, match="at most 500"):
        handsets.compile_pattern("a" * 501, "otp_pattern")


def test_rules_answer_with_the_first_match_and_its_groups() -> None:
    rules = handsets.parse_rules(
        [
            {"match": r"(?i)confirm order (?P<n>\d+)", "reply": r"YES \g<n>", "delay_ms": 5},
            {"match": r"(\w+) (\w+)", "reply": r"\2 \1"},
        ]
    )
    assert handsets.respond(rules, "Please CONFIRM ORDER 42") == (0, "YES 42", 5)
    assert handsets.respond(rules, "hello world") == (1, "world hello", 0)
    assert handsets.respond(rules, "!") is None
    assert handsets.respond(rules, None) is None
    assert [r.as_json() for r in rules][1] == {"match": r"(\w+) (\w+)", "reply": r"\2 \1", "delay_ms": 0}


@pytest.mark.parametrize(
    ("rule", "where"),
    [
        ({"match": r"(a)", "reply": r"\2"}, r"rules\[0\].reply: \\2"),
        ({"match": "a", "reply": r"\g<x>"}, r"rules\[0\].reply: \\g<x>"),
        ({"match": "a", "reply": ""}, r"rules\[0\].reply"),
        ({"match": "a", "reply": "b", "delay_ms": True}, r"rules\[0\].delay_ms"),
        ({"match": "a", "reply": "b", "delay_ms": -1}, r"rules\[0\].delay_ms"),
    ],
)
def test_bad_rules(rule: dict[str, object], where: str) -> None:
    with pytest.raises(errors.ValidationError, match=where):
        handsets.parse_rules([rule])


def test_behaviour_round_trip_and_limits() -> None:
    raw = {"receipts": {"duplicate": 0.5, "missing": 0, "out_of_order": True, "late_by": 2}, "throttle": 0.25}
    b = handsets.Behaviour.from_json(raw)
    assert handsets.Behaviour.from_json(b.as_json()) == b and not b.normal
    assert handsets.Behaviour.from_json({}).normal
    with pytest.raises(errors.ValidationError, match="throttle"):
        handsets.Behaviour.from_json({"throttle": 2})
    with pytest.raises(errors.ValidationError, match="late_by"):
        handsets.Behaviour.from_json({"receipts": {"late_by": 3601}})


@pytest.mark.parametrize(
    ("fraction", "pattern"), [(0.5, "-x-x-x-x"), (0.25, "---x---x"), (1.0, "xxxxxxxx"), (0, "--------")]
)
def test_diffuser_is_exact_and_evenly_spread(fraction: float, pattern: str) -> None:
    d = handsets.Diffuser()
    assert "".join("x" if d(fraction) else "-" for _ in pattern) == pattern
