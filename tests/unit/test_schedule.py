"""core.schedule: the send time, validity and priority every dialect parses the same way."""

from __future__ import annotations

import datetime as dt

import pytest

from smsgate import errors
from smsgate.core import schedule

NOW = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC).timestamp()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+3600s", NOW + 3600),
        ("2026-12-02T14:00:00+01:00", NOW + 3600),
        ("2026-12-02T13:00:00Z", NOW + 3600),
        ("2026-12-02T11:00:00Z", None),  # passed: now
    ],
)
def test_send_at_forms(raw: str, expected: float | None) -> None:
    assert schedule.parse_send_at(raw, now=NOW) == expected


@pytest.mark.parametrize("raw", ["2026-12-02T14:00:00", "tomorrow", "+3600", "+1h", "2028-01-01T00:00:00Z"])
def test_send_at_refused(raw: str) -> None:
    with pytest.raises(errors.ValidationError):
        schedule.parse_send_at(raw, now=NOW)


def test_validity_bounds() -> None:
    assert schedule.parse_validity("600") == 600.0
    for bad in ("0", "-5", "1.5", "x", str(schedule.MAX_VALIDITY_SECONDS + 1)):
        with pytest.raises(errors.ValidationError):
            schedule.parse_validity(bad)


def test_priority() -> None:
    assert schedule.parse_priority(" HIGH ") is schedule.Priority.HIGH
    with pytest.raises(errors.ValidationError):
        schedule.parse_priority("urgent")
