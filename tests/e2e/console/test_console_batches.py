"""The console's Batches section in headless Chromium (``console_batches.mjs``), and its API's scoping."""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest

from tests.e2e.console.test_console import HERE, ROOT, _browser_missing
from tests.support import GatewayProcess


def send_batch(gw: GatewayProcess, acc: dict[str, str], n: int) -> str:
    body = {"text": "Hi {name}", "recipients": [{"to": f"+3161235{i:03d}5", "vars": {"name": f"n{i}"}}
                                                for i in range(n)] + [{"to": "nope"}]}  # fmt: skip
    r = httpx.post(gw.url + "/v1/batches", json=body, auth=(acc["api_key"], acc["api_secret"]))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_batches_with_progress_in_chromium(gateway: GatewayProcess) -> None:
    missing = _browser_missing()
    if missing:
        pytest.skip(missing)
    acc = gateway.create_account("console-batches")
    bid = send_batch(gateway, acc, 3)
    shots = ROOT / "artifacts" / "console"
    shots.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CONSOLE_URL": gateway.url, "API_KEY": acc["api_key"], "API_SECRET": acc["api_secret"],
           "BATCH_ID": bid, "SHOTS": str(shots)}  # fmt: skip
    run = subprocess.run(["node", str(HERE / "console_batches.mjs")], env=env, cwd=HERE, capture_output=True,
                         text=True, timeout=90)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "batches check passed" in run.stdout


def test_console_batches_are_scoped(gateway: GatewayProcess) -> None:
    a = gateway.create_account("cb-a")
    b = gateway.create_account("cb-b")
    mine, theirs = send_batch(gateway, a, 1), send_batch(gateway, b, 1)
    seen = httpx.get(gateway.url + "/console/api/batches", auth=(a["api_key"], a["api_secret"])).json()["batches"]
    assert [x["id"] for x in seen] == [mine]
    operator = {"authorization": f"Bearer {gateway.operator_token}"}
    every = {x["id"] for x in httpx.get(gateway.url + "/console/api/batches", headers=operator).json()["batches"]}
    assert {mine, theirs} <= every
    assert httpx.get(gateway.url + "/console/api/batches").status_code == 401
