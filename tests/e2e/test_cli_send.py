"""``smsgate send`` against a real gateway: a 20,000-row CSV interrupted half-way (SIGKILL) and run again sends each
row exactly once; refused rows land in FILE.refused.csv; a single message."""

from __future__ import annotations

import asyncio
import csv
import os
import pathlib
import signal
import subprocess
import time

import sqlalchemy as sa

from smsgate.store import engine as store_engine
from smsgate.store import tables
from tests.support import SMSGATE, GatewayProcess, run_cli

ROWS = 20_000


def rows_of(gw: GatewayProcess, account_id: str) -> list[tuple[str, str]]:
    async def run() -> list[tuple[str, str]]:
        engine = store_engine.create(gw.database_url)
        try:
            async with engine.connect() as conn:
                m = tables.messages
                found = await conn.execute(sa.select(m.c.recipient, m.c.text).where(m.c.account_id == account_id))
                return [(r[0], r[1]) for r in found.all()]
        finally:
            await engine.dispose()

    return asyncio.run(run())


def count_of(gw: GatewayProcess, account_id: str) -> int:
    return len(rows_of(gw, account_id))


def test_csv_interrupted_and_run_again_sends_each_row_once(gateway: GatewayProcess, tmp_path: pathlib.Path) -> None:
    acc = gateway.create_account("campaign", balance=10**8 * 10**6)
    path = tmp_path / "people.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["to", "name", "code"])
        for i in range(ROWS):
            if i == 7:
                w.writerow(["not-a-number", f"n{i}", str(i)])
            elif i == 11:
                w.writerow([f"+3162{i:06d}5", f"n{i}"])  # short row: no code
            else:
                w.writerow([f"+3162{i:06d}5", f"n{i}", str(i)])
    env = {**os.environ, "SMSGATE_API_KEY": acc["api_key"], "SMSGATE_API_SECRET": acc["api_secret"]}
    args = ["send", "--csv", str(path), "--template", "Hi {name}, your code is {code}", "--url", gateway.url,
            "--chunk", "500"]  # fmt: skip
    proc = subprocess.Popen([*SMSGATE, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while count_of(gateway, acc["account_id"]) < ROWS // 2 and time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before it was interrupted"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    half = count_of(gateway, acc["account_id"])
    assert ROWS // 2 <= half < ROWS - 2, half

    done = run_cli(*args, env=env)
    assert "19,998 sent, 2 refused" in done.stdout, done.stdout
    assert "already sent by an earlier run" in done.stdout
    stored = rows_of(gateway, acc["account_id"])
    assert len(stored) == ROWS - 2
    assert len({r for r, _ in stored}) == ROWS - 2  # each row once
    assert ("+31620012345", "Hi n1234, your code is 1234") in stored
    refused = list(csv.reader((tmp_path / "people.csv.refused.csv").open()))
    assert refused[0] == ["row", "to", "name", "code", "reason"]
    assert [r[0] for r in refused[1:]] == ["8", "12"]
    assert "{code}" in refused[2][-1]

    again = run_cli(*args, env=env)  # a third run sends nothing
    assert "(19,998 already sent by an earlier run)" in again.stdout
    assert count_of(gateway, acc["account_id"]) == ROWS - 2


def test_single_message_and_bad_credentials(gateway: GatewayProcess) -> None:
    acc = gateway.create_account("one")
    env = {"SMSGATE_API_KEY": acc["api_key"], "SMSGATE_API_SECRET": acc["api_secret"]}
    r = run_cli("send", "--to", "+31612340777", "--text", "hello there", "--url", gateway.url, env=env)
    assert "sent: batch" in r.stdout
    assert rows_of(gateway, acc["account_id"]) == [("+31612340777", "hello there")]
    r = run_cli("send", "--to", "+31612340777", "--text", "x", "--url", gateway.url,
                env={**env, "SMSGATE_API_SECRET": "wrong"}, check=False)  # fmt: skip
    assert r.returncode == 1 and "401" in r.stdout
