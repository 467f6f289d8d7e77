"""``smsgate suppressions`` (import and export an account's list as CSV) and ``smsgate purge`` (delete old
messages now, whatever the retention settings say).

An import is all or nothing: a line that is not a number stops it before anything is written, naming the line.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import pathlib
import sys

import typer

from smsgate import errors
from smsgate.cli_common import ConfigOpt, JsonOpt, announce, console, find_account, run_store
from smsgate.core import retention
from smsgate.services import suppressions as services_suppressions
from smsgate.store import accounts as store_accounts
from smsgate.store import engine as store_engine
from smsgate.store import notify
from smsgate.store import retention as store_retention
from smsgate.store import suppressions as store_suppressions

suppressions_app = typer.Typer(help="Import and export an account's suppression list (CSV)", no_args_is_help=True)
AccountOpt = typer.Option(..., "--account", "-a", help="account id, api_key or name")
MAX_LINES = 1_000_000
PURGE_BATCH = 500


def _entries(path: pathlib.Path) -> list[tuple[str, str | None]]:
    """(digits, reason) from a CSV of ``msisdn[,reason]`` lines (a header line is skipped); BadParameter names the
    first line that is not a number."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}") from None
    out: list[tuple[str, str | None]] = []
    for n, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not row or not row[0].strip() or (n == 1 and not any(ch.isdigit() for ch in row[0])):
            continue  # blank line, or the header
        if len(out) >= MAX_LINES:
            raise typer.BadParameter(f"{path}: more than {MAX_LINES} numbers; split the file")
        try:
            digits = services_suppressions.digits_of(row[0])
        except errors.ValidationError as exc:
            raise typer.BadParameter(f"{path} line {n}: {row[0][:40]!r}: {exc.message}") from None
        reason = row[1].strip()[: services_suppressions.MAX_REASON] if len(row) > 1 and row[1].strip() else None
        out.append((digits, reason))
    return out


@suppressions_app.command("import")
def suppressions_import(
    file: pathlib.Path = typer.Argument(..., help="CSV: msisdn[,reason] per line (international numbers)"),
    account: str = AccountOpt,
    as_json: bool = JsonOpt,
    config: pathlib.Path | None = ConfigOpt,
) -> None:
    """Add every number of FILE to the account's suppression list (source ``import``)."""
    entries = _entries(file)

    async def run(engine: store_engine.Engine) -> tuple[str, int]:
        acc = await find_account(store_accounts.AccountStore(engine), account)
        return acc.id, await store_suppressions.SuppressionStore(engine).add_many(acc.id, entries, "import")

    account_id, added = run_store(config, run)
    announce(config, notify.SUPPRESSION, account_id)
    result = {"account_id": account_id, "read": len(entries), "added": added}
    typer.echo(json.dumps(result) if as_json else f"{added} of {len(entries)} numbers added ({account_id})")


@suppressions_app.command("export")
def suppressions_export(
    account: str = AccountOpt,
    output: pathlib.Path | None = typer.Option(None, "--output", "-o", help="file to write (default: stdout)"),
    config: pathlib.Path | None = ConfigOpt,
) -> None:
    """The account's suppression list as CSV: msisdn, source, reason, created_at (UTC)."""

    async def run(engine: store_engine.Engine) -> int:
        acc = await find_account(store_accounts.AccountStore(engine), account)
        out = output.open("w", newline="", encoding="utf-8") if output is not None else sys.stdout
        try:
            writer = csv.writer(out)
            writer.writerow(["msisdn", "source", "reason", "created_at"])
            count = 0
            async for chunk in store_suppressions.SuppressionStore(engine).every(acc.id):
                for s in chunk:
                    at = dt.datetime.fromtimestamp(s.created_at, dt.UTC).isoformat(timespec="seconds")
                    writer.writerow([s.msisdn, s.source, s.reason or "", at])
                count += len(chunk)
            return count
        finally:
            if output is not None:
                out.close()

    count = run_store(config, run, writes=False)
    if output is not None:
        console.print(f"{count} numbers written to {output}")


def _date(raw: str) -> float:
    """An ISO date or time (UTC unless it says otherwise) as epoch seconds."""
    try:
        when = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise typer.BadParameter(f"not a date: {raw!r} (use YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


def purge(
    before: str = typer.Option(..., "--before", help="delete messages created before this date (UTC), e.g. 2026-01-01"),
    account: str | None = typer.Option(None, "--account", "-a", help="only this account's (id, api_key or name)"),
    as_json: bool = JsonOpt,
    config: pathlib.Path | None = ConfigOpt,
) -> None:
    """Delete messages older than a date, with their parts, events and webhook log, in small transactions."""
    cutoff = _date(before)

    async def run(engine: store_engine.Engine) -> int:
        scope = retention.Scope(None)
        if account is not None:
            scope = retention.Scope((await find_account(store_accounts.AccountStore(engine), account)).id)
        total = 0
        while True:
            async with engine.begin() as conn:
                n = await store_retention.delete_older(conn, scope, cutoff, PURGE_BATCH)
            total += n
            if n < PURGE_BATCH:
                return total

    deleted = run_store(config, run)
    typer.echo(json.dumps({"deleted": deleted}) if as_json else f"{deleted} messages deleted")
