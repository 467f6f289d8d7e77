"""The access line written straight into the buffered handler is the line the logging formatters would write."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from smsgate import logs

NOW = 1_764_700_000.25  # a quarter past a whole second: both ways must agree on the milliseconds
FIELDS = ("127.0.0.1", "POST", "/messaging/sms-kpn/v1/send", 200, 1.23456, "acc-1")


def _through_logging(formatter: logging.Formatter) -> str:
    record = logging.LogRecord(logs.ACCESS, logging.INFO, __file__, 1, logs.ACCESS_FORMAT, FIELDS, None)
    record.created, record.msecs = NOW, 250.0
    return formatter.format(record)


@pytest.mark.parametrize(("fmt", "prefix"), [("text", ""), ("text", "[worker 1] "), ("json", "")])
def test_direct_line_equals_the_formatters_line(monkeypatch: pytest.MonkeyPatch, fmt: str, prefix: str) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    logs.configure("INFO", fmt, access=True, prefix=prefix)
    try:
        handler = logs.access_log.handlers[0]
        assert isinstance(handler, logs.BufferedHandler) and handler.formatter is not None
        expected = _through_logging(handler.formatter)
        lines = logs.AccessLines(handler, fmt, prefix)
        lines(NOW, *FIELDS)
        handler.flush()
        assert stream.getvalue() == expected + "\n"
    finally:
        logs.configure("WARNING", "text", access=False)


def test_access_masks_numbers_in_the_path(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    logs.configure("INFO", "text", access=True)
    try:
        logs.access("127.0.0.1", "GET", "/sandbox/handsets/31612345678/messages", 200, 0.0)
        logs.flush()
        line = stream.getvalue()
        assert "/sandbox/handsets/3161*****78/messages" in line and "31612345678" not in line
    finally:
        logs.configure("WARNING", "text", access=False)
