"""``smsgate send``: one message, or a CSV campaign, through a running gateway's ``POST /v1/batches``.

A CSV is sent in chunks of rows; each chunk's ``Idempotency-Key`` is derived from the file's content, the template,
the sender and the chunk's row range, and the gateway stores it with the chunk's batch in one transaction. So a
campaign that stops half-way (Ctrl-C, a lost connection, a killed terminal) is resumed by running the same
command again: chunks already stored are answered from their key and nothing is sent twice. Rows the gateway
refuses (a bad number, a placeholder without a column) are written to ``FILE.refused.csv`` with the reason.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import pathlib
import time
from typing import Any

import httpx
import typer
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.text import Text

from smsgate.cli_common import console

RETRIES = 5


@dataclasses.dataclass
class Tally:
    sent: int = 0
    refused: int = 0
    replayed: int = 0  # rows of chunks the gateway had stored already (a resumed run)
    started: float = dataclasses.field(default_factory=time.monotonic)


class RateColumn(ProgressColumn):
    """Sent and refused rows and rows per second, from the task's fields."""

    def render(self, task: Task) -> Text:
        tally: Tally = task.fields["tally"]
        rate = tally.sent / max(1e-6, time.monotonic() - tally.started)
        return Text(f"sent {tally.sent:,}  refused {tally.refused:,}  {rate:,.0f}/s")


def send(
    to: str | None = typer.Option(None, "--to", help="one recipient (E.164); or use --csv"),
    text: str | None = typer.Option(None, "--text", help="the message (with --to)"),
    sender: str | None = typer.Option(None, "--from", help="sender; default: the account's"),
    csv_file: pathlib.Path | None = typer.Option(
        None, "--csv", exists=True, dir_okay=False, help="recipients, with a header row"
    ),
    template: str | None = typer.Option(
        None, "--template", help='text for --csv, e.g. "Hi {name}, your code is {code}"'
    ),
    to_column: str = typer.Option("to", "--to-column", help="the CSV column with the number"),
    chunk: int = typer.Option(1000, "--chunk", min=1, max=5000, help="rows per request"),
    url: str = typer.Option("http://127.0.0.1:8080", "--url", envvar="SMSGATE_URL", help="the gateway"),
    api_key: str | None = typer.Option(None, "--api-key", envvar="SMSGATE_API_KEY"),
    api_secret: str | None = typer.Option(None, "--api-secret", envvar="SMSGATE_API_SECRET"),
    account: str | None = typer.Option(None, "--account", help="send as this sub-account (its name)"),
) -> None:
    """Send one message (--to --text) or a CSV campaign (--csv --template) through a running gateway; a CSV run
    can be re-run after an interruption and sends each row once."""
    if not api_key or not api_secret:
        raise typer.BadParameter("set SMSGATE_API_KEY and SMSGATE_API_SECRET (or --api-key/--api-secret)")
    client = httpx.Client(base_url=url.rstrip("/"), auth=(api_key, api_secret), timeout=120)
    if csv_file is None:
        if not to or text is None:
            raise typer.BadParameter("give --to and --text, or --csv and --template")
        body = {"from": sender, "text": text, "recipients": [{"to": to}], "account": account}
        answer = _post(client, {k: v for k, v in body.items() if v is not None}, None)
        if answer["refused"]:
            console.print(f"[red]refused: {answer['refused'][0]['reason']}[/red]")
            raise typer.Exit(1)
        console.print(f"sent: batch {answer['id']}")
        return
    if template is None:
        raise typer.BadParameter("--csv needs --template")
    _campaign(client, csv_file, template, sender, to_column, chunk, account)


def _campaign(client: httpx.Client, path: pathlib.Path, template: str, sender: str | None, to_column: str,
              chunk: int, account: str | None) -> None:  # fmt: skip
    raw = path.read_bytes()
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    if rows and to_column not in rows[0]:
        raise typer.BadParameter(f"{path} has no column {to_column!r} (use --to-column)")
    digest = hashlib.sha256(raw + b"\0" + template.encode() + b"\0" + (sender or "").encode()).hexdigest()[:32]
    tally = Tally()
    refused_rows: list[tuple[int, dict[str, str], str]] = []
    with Progress(TextColumn("{task.description}"), BarColumn(), RateColumn(), TimeRemainingColumn(),
                  console=console) as progress:  # fmt: skip
        task = progress.add_task(path.name, total=len(rows), tally=tally)
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            body: dict[str, Any] = {
                "text": template,
                "recipients": [
                    {"to": r.get(to_column) or "", "vars": {k: v for k, v in r.items() if k and v is not None}}
                    for r in part
                ],
            }
            if sender:
                body["from"] = sender
            if account:
                body["account"] = account
            answer = _post(client, body, f"csv-{digest}-{start}-{start + len(part)}")
            if answer.get("_replayed"):
                tally.replayed += answer["accepted"]
            refusals = answer["refused"]
            for f in refusals:
                refused_rows.append((start + f["index"], part[f["index"]], f["reason"]))
            tally.sent += answer["accepted"]
            tally.refused += len(refusals)
            progress.update(task, advance=len(part))
    seconds = time.monotonic() - tally.started
    console.print(
        f"{len(rows):,} rows: {tally.sent:,} sent, {tally.refused:,} refused"
        + (f" ({tally.replayed:,} already sent by an earlier run)" if tally.replayed else "")
        + f", {seconds:.1f} s"
    )
    if refused_rows:
        out = path.with_name(path.name + ".refused.csv")
        with out.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["row", *rows[0].keys(), "reason"])
            for index, row, reason in sorted(refused_rows, key=lambda x: x[0]):
                writer.writerow([index + 1, *row.values(), reason])
        console.print(f"refused rows and reasons: {out}")


def _post(client: httpx.Client, body: dict[str, Any], key: str | None) -> dict[str, Any]:
    """POST /v1/batches, retrying a lost connection or a 5xx with the same key; exit 1 on a refusal."""
    headers = {"Idempotency-Key": key} if key else {}
    for attempt in range(RETRIES):
        try:
            r = client.post("/v1/batches", json=body, headers=headers)
        except httpx.TransportError as exc:
            error = f"{type(exc).__name__}: {exc}"
        else:
            if r.status_code == 201:
                answer: dict[str, Any] = r.json()
                answer["_replayed"] = r.headers.get("idempotent-replayed") == "true"
                return answer
            if r.status_code < 500 and r.status_code != 429:
                message = r.json().get("error", {}).get("message", r.text) if _is_json(r) else r.text
                console.print(f"[red]the gateway refused the request ({r.status_code}): {message}[/red]")
                raise typer.Exit(1)
            error = f"HTTP {r.status_code}"
        if key is None:
            break  # a single message without a key is not retried: it could be sent twice
        time.sleep(min(10.0, 0.5 * 2**attempt))
    console.print(f"[red]could not reach the gateway ({error}); run the same command again to resume[/red]")
    raise typer.Exit(1)


def _is_json(r: httpx.Response) -> bool:
    return str(r.headers.get("content-type", "")).startswith("application/json")
