"""When a message may go and how urgently: the send time, validity and priority a client asks for.

Every dialect takes these in its own spelling (our API's ``send_at`` / ``validity_seconds`` / ``priority``, an
``X-Send-At`` / ``X-Validity-Seconds`` header on the vendor dialects, Vonage's ``ttl``); they are parsed here, once,
into the values ``services.sending.SendRequest`` carries, so every dialect means the same by them.
"""

from __future__ import annotations

import datetime as dt
import enum
import re

from smsgate.errors import ValidationError

# how far ahead a message may be scheduled, and the longest validity (SMPP's relative validity_period tops out
# far beyond this; a week is what operators keep a message for)
MAX_AHEAD_SECONDS = 366 * 24 * 3600
MAX_VALIDITY_SECONDS = 7 * 24 * 3600
_RELATIVE = re.compile(r"\+(\d{1,9})s")


class Priority(enum.StrEnum):
    """The dispatcher's lanes: ``high`` (one-time codes) before ``normal`` before ``bulk``, by weight."""

    HIGH = "high"
    NORMAL = "normal"
    BULK = "bulk"

    @property
    def lane(self) -> int:
        """The lane's index, most urgent first (the outbox orders a backlog by it)."""
        return _LANES[self]


_LANES = {Priority.HIGH: 0, Priority.NORMAL: 1, Priority.BULK: 2}


def parse_priority(raw: str) -> Priority:
    try:
        return Priority(raw.strip().lower())
    except ValueError:
        raise ValidationError("priority must be one of high, normal, bulk") from None


def parse_send_at(raw: str, *, now: float) -> float | None:
    """``send_at`` as epoch seconds: ISO-8601 with an offset (``2026-12-24T09:00:00+01:00``, ``…Z``) or relative
    (``+3600s``). A time that has passed means now (``None``): a client's clock a little behind ours must not make
    the message fail. A time without an offset is refused: whose local time it means cannot be guessed."""
    value = raw.strip()
    relative = _RELATIVE.fullmatch(value)
    if relative:
        at = now + int(relative.group(1))
    else:
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(
                "send_at must be ISO-8601 with an offset (2026-12-24T09:00:00+01:00) or relative (+3600s)"
            ) from None
        if parsed.tzinfo is None:
            raise ValidationError("send_at needs a UTC offset (…Z or …+01:00)")
        at = parsed.timestamp()
    if at - now > MAX_AHEAD_SECONDS:
        raise ValidationError("send_at may be at most 366 days ahead")
    return at if at > now else None


def parse_validity(raw: str | int | float) -> float:
    """A validity in whole seconds, 1 s … 7 days."""
    try:
        seconds = int(str(raw).strip())
    except ValueError:
        raise ValidationError("validity must be a whole number of seconds") from None
    if not 1 <= seconds <= MAX_VALIDITY_SECONDS:
        raise ValidationError(f"validity must be between 1 and {MAX_VALIDITY_SECONDS} seconds")
    return float(seconds)
