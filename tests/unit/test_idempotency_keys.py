"""Idempotency keys as values (``core.idempotency``) and their setting."""

from __future__ import annotations

import pytest

from smsgate import configfile, errors, settings
from smsgate.core import idempotency


@pytest.mark.parametrize("key", ["a", "x" * 255, "order-42/retry 1", "~!@#$%^&*()"])
def test_printable_ascii_keys_of_1_to_255_characters(key: str) -> None:
    assert idempotency.parse_key(key) == key


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "tab\there", "nul\x00", "del\x7f"])
def test_other_keys_are_refused_naming_the_header(key: str) -> None:
    with pytest.raises(errors.ValidationError) as caught:
        idempotency.parse_key(key)
    assert caught.value.field == "Idempotency-Key"


def test_the_fingerprint_tells_the_pieces_apart() -> None:
    assert idempotency.fingerprint("POST", "/a", b"b") == idempotency.fingerprint("POST", "/a", b"b")
    assert idempotency.fingerprint("POST", "/a", b"b") != idempotency.fingerprint("POST", "/ab", b"")


@pytest.mark.parametrize("hours", ["0", "-1", "721", "soon"])
def test_a_bad_retention_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch, hours: str) -> None:
    monkeypatch.setenv("SMSGATE_IDEMPOTENCY_HOURS", hours)
    with pytest.raises(configfile.ConfigError) as caught:
        settings.load(warn=lambda _line: None)
    assert "SMSGATE_IDEMPOTENCY_HOURS" in str(caught.value)


def test_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMSGATE_IDEMPOTENCY_HOURS", raising=False)
    monkeypatch.delenv("SMSGATE_DEFAULT_SENDER", raising=False)
    s = settings.load(warn=lambda _line: None)
    assert s.idempotency_hours == 24.0 and s.default_sender == "smsgate"
