"""What a virtual handset does with what it receives, per account: read a one-time code, answer by script, and
how the simulated network treats the account's traffic (receipts and throttling).

Patterns come from accounts (an OTP pattern per request, a script's ``match``), so they are compiled with RE2:
matching is linear in the text whatever the pattern, so no pattern can stall the gateway (Python's ``re`` can
backtrack for minutes on ``(a*)*b``). RE2 has no look-arounds and no back-references *inside* a pattern; the
default OTP pattern is written without them, and a reply template still takes ``\\1`` and ``\\g<name>``.

Pure: no I/O, no asyncio.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

import re2

from smsgate.errors import ValidationError

# the first run of 4 to 8 digits that is a whole run (not part of a phone number or an amount in cents)
DEFAULT_OTP_PATTERN = r"(?:^|\D)(\d{4,8})(?:\D|$)"
MAX_PATTERN = 500
MAX_REPLY = 1000
MAX_RULES = 20
MAX_DELAY_MS = 60_000
MAX_LATE_SECONDS = 3600.0

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a bad pattern is the caller's 400, not a line on the gateway's stderr
_OPTIONS.max_mem = 1 << 20  # bytes for one compiled pattern: a huge counted repetition is refused, not built
_TEMPLATE_REF = re.compile(r"\\(?:(\d+)|g<([^>]*)>)")


@dataclasses.dataclass(frozen=True, slots=True)
class Pattern:
    """A compiled RE2 pattern and its source."""

    source: str
    compiled: Any  # re2._Regexp (the binding ships no types)

    def search(self, text: str) -> Any:
        return self.compiled.search(text)


def compile_pattern(source: str, what: str) -> Pattern:
    """``source`` compiled, or a ValidationError naming ``what`` (the field) and RE2's reason."""
    if not source:
        raise ValidationError(f"{what}: must not be empty")
    if len(source) > MAX_PATTERN:
        raise ValidationError(f"{what}: at most {MAX_PATTERN} characters")
    try:
        return Pattern(source, re2.compile(source, _OPTIONS))
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValidationError(
            f"{what}: not a pattern RE2 takes ({reason}); look-arounds and back-references are not supported"
        ) from None


DEFAULT_OTP = compile_pattern(DEFAULT_OTP_PATTERN, "otp_pattern")


def otp(pattern: Pattern, text: str | None) -> str | None:
    """The code in ``text``: the pattern's first group when it has one, else the whole match; None if no match."""
    if not text:
        return None
    m = pattern.search(text)
    if m is None:
        return None
    found = m.group(1) if pattern.compiled.groups else m.group(0)
    return str(found) if found is not None else None


# -- scripts ------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    """When a received text matches ``match`` (searched anywhere; anchor with ``^``), the handset answers ``reply``
    (``\\1``, ``\\g<name>`` filled from the match) after ``delay_ms``."""

    match: Pattern
    reply: str
    delay_ms: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"match": self.match.source, "reply": self.reply, "delay_ms": self.delay_ms}


def parse_rules(raw: Sequence[Mapping[str, Any]]) -> tuple[Rule, ...]:
    """Rules from their JSON form (as stored and as sent), each checked; errors name ``rules[i].field``."""
    if len(raw) > MAX_RULES:
        raise ValidationError(f"rules: at most {MAX_RULES}")
    out = []
    for i, item in enumerate(raw):
        where = f"rules[{i}]"
        match = compile_pattern(str(item.get("match", "")), f"{where}.match")
        reply = str(item.get("reply", ""))
        if not reply or len(reply) > MAX_REPLY:
            raise ValidationError(f"{where}.reply: 1 to {MAX_REPLY} characters")
        delay = item.get("delay_ms", 0)
        if not isinstance(delay, int) or isinstance(delay, bool) or not 0 <= delay <= MAX_DELAY_MS:
            raise ValidationError(f"{where}.delay_ms: a whole number from 0 to {MAX_DELAY_MS}")
        _check_template(match, reply, f"{where}.reply")
        out.append(Rule(match, reply, delay))
    return tuple(out)


def _check_template(match: Pattern, reply: str, what: str) -> None:
    """Every ``\\N`` and ``\\g<name>`` in ``reply`` names a group of the pattern (else expanding would fail later,
    when a message arrives and nobody is there to read the error)."""
    names = match.compiled.groupindex
    for number, name in _TEMPLATE_REF.findall(reply):
        ref = number or name
        if ref.isdigit():
            if int(ref) > match.compiled.groups:
                raise ValidationError(f"{what}: \\{ref} names no group of the match pattern")
        elif ref not in names:
            raise ValidationError(f"{what}: \\g<{ref}> names no group of the match pattern")


def respond(rules: Sequence[Rule], text: str | None) -> tuple[int, str, int] | None:
    """(rule index, reply text, delay_ms) of the first rule matching ``text``, or None."""
    if text is None:
        return None
    for i, rule in enumerate(rules):
        m = rule.match.search(text)
        if m is not None:
            return i, str(m.expand(rule.reply)), rule.delay_ms
    return None


# -- network behaviour ------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, slots=True)
class Behaviour:
    """How the sandbox network treats one account's traffic. All off is ``NORMAL``.

    Fractions are applied by error diffusion, not by chance: 0.25 is exactly every fourth receipt (or submit), so
    a test sees the same thing on every run."""

    duplicate_receipts: float = 0.0  # fraction of receipts sent twice
    missing_receipts: float = 0.0  # fraction of receipts never sent
    out_of_order_receipts: bool = False  # receipts held briefly and handed over newest first
    late_by: float = 0.0  # seconds every receipt comes later than usual
    throttle: float = 0.0  # fraction of submits answered "throttled" (retried by the dispatcher)

    @property
    def normal(self) -> bool:
        return self == NORMAL

    def as_json(self) -> dict[str, Any]:
        return {
            "receipts": {
                "duplicate": self.duplicate_receipts,
                "missing": self.missing_receipts,
                "out_of_order": self.out_of_order_receipts,
                "late_by": self.late_by,
            },
            "throttle": self.throttle,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Behaviour:
        receipts = raw.get("receipts") or {}
        b = cls(
            duplicate_receipts=float(receipts.get("duplicate", 0.0)),
            missing_receipts=float(receipts.get("missing", 0.0)),
            out_of_order_receipts=bool(receipts.get("out_of_order", False)),
            late_by=float(receipts.get("late_by", 0.0)),
            throttle=float(raw.get("throttle", 0.0)),
        )
        for name, value in (
            ("receipts.duplicate", b.duplicate_receipts),
            ("receipts.missing", b.missing_receipts),
            ("throttle", b.throttle),
        ):
            if not 0.0 <= value <= 1.0:
                raise ValidationError(f"{name}: a fraction from 0 to 1")
        if not 0.0 <= b.late_by <= MAX_LATE_SECONDS:
            raise ValidationError(f"receipts.late_by: seconds from 0 to {MAX_LATE_SECONDS:g}")
        return b


NORMAL = Behaviour()


class Diffuser:
    """Says yes to exactly ``fraction`` of the calls, evenly spread (error diffusion): 0.5 is every other call."""

    __slots__ = ("_acc",)

    def __init__(self) -> None:
        self._acc = 0.0

    def __call__(self, fraction: float) -> bool:
        if fraction <= 0.0:
            return False
        self._acc += fraction
        if self._acc >= 1.0 - 1e-9:
            self._acc -= 1.0
            return True
        return False
