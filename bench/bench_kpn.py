"""KPN send accept rate and sandbox delivery rate, on the embedded default (SQLite, sandbox network).

Starts `smsgate serve` in a temp dir, sends N KPN v1 requests over C keep-alive connections, then waits until the
sandbox has marked every accepted message delivered. Prints accept rate, latency p50/p99 and the delivered rate.

    .venv/bin/python bench/bench_kpn.py --n 20000 -c 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import load


def _post(url: str, data: bytes, headers: dict[str, str]) -> dict[str, str]:
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("-c", "--concurrency", type=int, default=20)
    ap.add_argument("--port", type=int, default=18181)
    ap.add_argument("--time-limit", type=float, default=300)
    ap.add_argument("--log-level", default="warning", help="the gateway's; info turns the access log on")
    args = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="smsgate-bench-"))
    env = {**os.environ, "SMSGATE_DATA_DIR": str(tmp), "SMSGATE_DEFAULT_BALANCE": "100000000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "smsgate", "serve", "--port", str(args.port), "--log-level", args.log_level],
        env=env, stdout=open(tmp / "gateway.log", "w"), stderr=subprocess.STDOUT, text=True,  # noqa: SIM115
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        acc = json.loads(subprocess.check_output(
            [sys.executable, "-m", "smsgate", "accounts", "create", "bench", "--json", "--balance", "100000000"],
            env=env, text=True,
        ))
        tok = _post(
            base + "/oauth/client_credential/accesstoken?grant_type=client_credentials",
            f"client_id={acc['api_key']}&client_secret={acc['api_secret']}".encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )["access_token"]
        body = json.dumps({"sender": "bench", "messages": [{"mobile_number": "0612345678", "content": "hello"}]}).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {tok}"}
        res = asyncio.run(load.run(base + "/messaging/sms-kpn/v1/send", n=args.n, concurrency=args.concurrency,
                                   body=body, headers=headers, time_limit=args.time_limit))
        db = sqlite3.connect(tmp / "smsgate.db")
        deadline = time.time() + args.time_limit
        delivered = 0
        while time.time() < deadline:
            delivered = db.execute(
                "select count(*) from messages where account_id=? and status='delivered'", (acc["account_id"],)
            ).fetchone()[0]
            if delivered >= res.ok:
                break
            time.sleep(0.05)
        last_update = db.execute(
            "select max(updated_at) from messages where account_id=?", (acc["account_id"],)
        ).fetchone()[0]
        e2e = last_update - res.first_sent_at
        print(f"log             {tmp / 'gateway.log'}")
        print(f"requests        {res.sent} over {args.concurrency} connections, statuses {res.statuses}")
        print(f"accept rate     {res.ok / res.seconds:,.0f} msg/s  (p50 {res.percentile(50):.1f} ms, p99 {res.percentile(99):.1f} ms)")
        print(f"delivered       {delivered} of {res.ok}; first request -> last delivered {e2e:.2f} s = {delivered / e2e:,.0f} msg/s")
    finally:
        proc.terminate()
        proc.wait(20)


if __name__ == "__main__":
    main()
