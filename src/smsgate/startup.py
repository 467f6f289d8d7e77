"""Why the gateway (or a CLI command) could not start, in one line a person can act on.

Every failure before the gateway serves (configuration, data dir, database, port, TLS files) reaches the CLI
as an exception; ``explain`` turns the ones we know into ``(line, advice)``. The CLI prints them and exits with
status 2; ``--debug`` adds the traceback. An exception nobody foresaw still gets one line (its type and text).
"""

from __future__ import annotations

import errno

from smsgate import configfile, tls
from smsgate.settings import Settings


class StartupError(Exception):
    """A failure already worded for the operator; ``hint`` is an optional second line of advice."""

    def __init__(self, line: str, hint: str | None = None) -> None:
        super().__init__(line)
        self.line = line
        self.hint = hint


class DatabaseMissing(StartupError):
    """A CLI command found no database where the settings point (it does not create one silently)."""


def check_data_dir(settings: Settings) -> None:
    """The directory of the SQLite file exists (made if not) and takes a write; StartupError otherwise."""
    path = settings.sqlite_path
    if path is None:
        return
    folder = path.parent
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # secrets and messages: this user only
        probe = folder / f".smsgate-write-test-{id(path)}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        setting = "SMSGATE_DATABASE_URL" if settings.database_url else "SMSGATE_DATA_DIR"
        raise StartupError(
            f"data dir {folder}: cannot write there ({exc.strerror or exc})",
            f"point {setting} at a directory this user can write",
        ) from None


def require_database(settings: Settings) -> None:
    """For CLI commands: a SQLite file that does not exist yet is an error, not a new empty database."""
    path = settings.sqlite_path
    if path is not None and not path.exists():
        raise DatabaseMissing(
            f"no database at {path}",
            "start the gateway once (smsgate serve) or run smsgate migrate to create it; "
            "or set SMSGATE_DATA_DIR / SMSGATE_DATABASE_URL to the one you meant",
        )


def database_error(settings: Settings, exc: BaseException) -> StartupError:
    """A database that is down, missing or refuses us, named by its URL without the password."""
    return StartupError(
        f"database {settings.masked_database_url}: {_db_reason(exc)}",
        "check SMSGATE_DATABASE_URL, and that the database server is running and reachable",
    )


def _db_reason(exc: BaseException) -> str:
    seen: BaseException | None = exc
    for _ in range(6):  # SQLAlchemy wraps the driver's error, which may wrap an OSError
        if seen is None:
            break
        orig = getattr(seen, "orig", None)
        if isinstance(seen, ConnectionRefusedError) or (isinstance(seen, OSError) and seen.errno == errno.ECONNREFUSED):
            return "connection refused (is the server running?)"
        if isinstance(seen, TimeoutError):
            return "no answer (timed out)"
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        if orig is not None and orig is not seen:
            seen = orig
            continue
        text = str(seen).strip().splitlines()[0] if str(seen).strip() else type(seen).__name__
        if "<class" in text and ">: " in text:  # asyncpg's errors as SQLAlchemy's adapter words them
            text = text.split(">: ", 1)[1]
        if seen.__cause__ is None:
            return text
        seen = seen.__cause__
    return type(exc).__name__


def explain(exc: BaseException) -> tuple[str, str | None]:
    """``(line, advice)`` for a failure before serving; the line names the file, key, setting or address."""
    if isinstance(exc, StartupError):
        return exc.line, exc.hint
    if isinstance(exc, configfile.ConfigError):
        return str(exc), exc.hint
    if isinstance(exc, tls.TlsError):
        return str(exc), "give --tls-cert/--tls-key PEM files, or use --tls-self-signed"
    if isinstance(exc, OSError) and exc.errno in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
        return str(exc), None
    return f"{type(exc).__name__}: {exc}".splitlines()[0], "run again with --debug for the traceback"


def bind_error(host: str, port: int, exc: OSError) -> StartupError:
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return StartupError(
            f"cannot listen on {where}: the port is already in use",
            "stop what is using it (another smsgate?) or choose another port with --port",
        )
    if exc.errno == errno.EACCES:
        return StartupError(f"cannot listen on {where}: permission denied", "use a port above 1023")
    if exc.errno == errno.EADDRNOTAVAIL:
        return StartupError(f"cannot listen on {where}: no such address on this machine", "check --host")
    return StartupError(f"cannot listen on {where}: {exc.strerror or exc}")
