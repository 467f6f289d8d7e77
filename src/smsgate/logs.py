"""Logging for operators: ``text`` or ``json`` lines on stderr, an access line per request, masked numbers.

What is logged, and what never is: secrets, tokens and message text never (text only at DEBUG, where nothing
here puts it); phone numbers only at DEBUG and then masked (``mask_number``). The access line carries the
method, the path without its query string (Vonage callers may put ``api_secret`` there), the status, the
duration and the account the request acted for; never a header or a body.

The access logger writes through a block-buffered handler flushed at most every ``FLUSH_INTERVAL`` seconds
(and at exit): a line per send must not cost a write system call per send on the hot path (see
docs/decisions.md for the measurement).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import re
import sys
import threading
import time
from typing import Any, TextIO

import orjson

ACCESS = "smsgate.access"
FLUSH_INTERVAL = 0.5
access_log = logging.getLogger(ACCESS)

# the account the current request acts for (set where credentials are checked, read by the access line)
current_account: contextvars.ContextVar[str | None] = contextvars.ContextVar("smsgate_account", default=None)


def mask_number(number: str) -> str:
    """``+31612345678`` -> ``+3161*****78``: enough to tell numbers apart in a debug session, not to dial."""
    digits = number.lstrip("+")
    if len(digits) <= 6:
        return "*" * len(number)
    plus = "+" if number.startswith("+") else ""
    return plus + digits[:4] + "*" * (len(digits) - 6) + digits[-2:]


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message; access lines add their fields by name."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        if record.name == ACCESS and isinstance(record.args, tuple) and len(record.args) == len(ACCESS_FIELDS):
            out.update(zip(ACCESS_FIELDS, record.args, strict=True))
            out["duration_ms"] = round(out["duration_ms"], 2)
        out["message"] = record.getMessage()
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


_CHATTY = ("aiosqlite", "asyncio", "httpcore", "httpx", "multipart", "python_multipart", "hpack")
ACCESS_FORMAT = '%s "%s %s" %d %.1fms account=%s'
ACCESS_FIELDS = ("client", "method", "path", "status", "duration_ms", "account")


# a phone number as a whole path segment (``/sandbox/handsets/31612345678/messages``), not digits inside an id
_NUMBER_IN_PATH = re.compile(r"(?<![A-Za-z0-9_-])\+?\d{7,15}(?![A-Za-z0-9_-])")


def access(client: str, method: str, path: str, status: int, started: float) -> None:
    """One access line (already checked: ``access_log.isEnabledFor(INFO)``); numbers in the path masked."""
    if _NUMBER_IN_PATH.search(path):
        path = _NUMBER_IN_PATH.sub(lambda m: mask_number(m.group(0)), path)
    line = _access_line
    if line is None:  # access lines configured some other way (a test's handler): the logging module's path
        access_log.info(ACCESS_FORMAT, client, method, path, status, _ms(started), current_account.get() or "-")
        return
    line(time.time(), client, method, path, status, _ms(started), current_account.get() or "-")


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


class AccessLines:
    """Access lines formatted straight into the buffered handler, the same text the formatters would write.

    A request's line through ``logging`` builds a ``LogRecord`` (caller lookup, thread and process names) and
    runs the formatter: ~10 µs a line here, against ~2 µs this way — on the hot path that is a few per cent of a
    send's CPU (docs/decisions.md). Lines of every other logger keep going through ``logging``.
    """

    def __init__(self, handler: BufferedHandler, fmt: str, prefix: str) -> None:
        self._handler = handler
        self._json = fmt == "json"
        self._head = f" INFO {prefix}{ACCESS}: "
        # the time as each formatter writes it: JSON in UTC ("…T21:58:10.473+00:00"), text as logging's default
        # asctime in local time ("… 21:58:10,473"); the seconds formatted once per second
        self._clock, self._layout, self._sep, self._tail = (
            (time.gmtime, "%Y-%m-%dT%H:%M:%S", ".", "+00:00")
            if self._json
            else (time.localtime, "%Y-%m-%d %H:%M:%S", ",", "")
        )
        self._second = -1
        self._stamp = ""

    def _time(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second, self._stamp = second, time.strftime(self._layout, self._clock(second))
        return f"{self._stamp}{self._sep}{int((now - second) * 1000):03d}{self._tail}"

    def __call__(self, now: float, client: str, method: str, path: str, status: int, ms: float, account: str) -> None:
        message = ACCESS_FORMAT % (client, method, path, status, ms, account)
        if self._json:
            fields = dict(zip(ACCESS_FIELDS, (client, method, path, status, round(ms, 2), account), strict=True))
            record = {"time": self._time(now), "level": "INFO", "logger": ACCESS, **fields, "message": message}
            self._handler.append(orjson.dumps(record).decode())
        else:
            self._handler.append(self._time(now) + self._head + message)


_access_line: AccessLines | None = None


class BufferedHandler(logging.Handler):
    """Formats each record at once, writes them in batches: every ``FLUSH_INTERVAL`` s from a timer thread,
    or at once when ``MAX_LINES`` are waiting (so memory stays bounded under any load)."""

    MAX_LINES = 2000

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self._lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._flusher, name="log-flush", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.append(line)

    def append(self, line: str) -> None:
        """Queue one formatted line."""
        self._lines.append(line)  # list.append is atomic under the GIL; the flusher swaps the list
        if len(self._lines) >= self.MAX_LINES:
            self.flush()

    def flush(self) -> None:
        with self.lock or threading.Lock():
            lines, self._lines = self._lines, []
            if not lines:
                return
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass

    def _flusher(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self.flush()
        super().close()


def configure(level: str = "INFO", fmt: str = "text", *, access: bool = True, prefix: str = "") -> None:
    """Root logging to stderr in ``fmt``; access lines (INFO) through their own buffered handler."""
    global _access_line
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    if prefix and fmt == "text":
        formatter = logging.Formatter(f"%(asctime)s %(levelname)s {prefix}%(name)s: %(message)s")
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))  # "Context impl SQLiteImpl." is noise
    for chatty in _CHATTY:  # --log-level debug is for smsgate's own lines, not every driver call
        logging.getLogger(chatty).setLevel(max(logging.INFO, root.level))
    for h in list(access_log.handlers):
        access_log.removeHandler(h)
        h.close()
    access_log.propagate = False
    _access_line = None
    if access:
        buffered = BufferedHandler(sys.stderr)
        buffered.setFormatter(formatter)
        access_log.addHandler(buffered)
        access_log.setLevel(logging.INFO)
        _access_line = AccessLines(buffered, fmt, prefix if fmt == "text" else "")
    else:
        access_log.setLevel(logging.CRITICAL + 1)


def flush() -> None:
    """Write out buffered access lines (at shutdown)."""
    for h in access_log.handlers:
        h.flush()
