"""KPN send accept rate and sandbox delivery rate, on the embedded default (SQLite, sandbox network).

Starts `smsgate serve` in a temp dir, sends N KPN v1 requests over C keep-alive connections, then waits until the
sandbox has marked every accepted message delivered. Prints accept rate, latency p50/p99 and the delivered rate.

    .venv/bin/python bench/bench_kpn.py --n 20000 -c 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import sqlite3
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import driver
import load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("-c", "--concurrency", type=int, default=20)
    ap.add_argument("--port", type=int, default=18181)
    ap.add_argument("--time-limit", type=float, default=300)
    ap.add_argument("--log-level", default="warning", help="the gateway's; info turns the access log on")
    args = ap.parse_args()
    env = {"SMSGATE_DEFAULT_BALANCE": "100000000"}
    with driver.gateway("smsgate-bench-", args.port, "--log-level", args.log_level, env=env) as stack:
        acc = stack.account()
        message = {"sender": "bench", "messages": [{"mobile_number": "0612345678", "content": "hello"}]}
        body = json.dumps(message).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {stack.token(acc)}"}
        res = asyncio.run(load.run(stack.base + "/messaging/sms-kpn/v1/send", n=args.n, concurrency=args.concurrency,
                                   body=body, headers=headers, time_limit=args.time_limit))  # fmt: skip
        db = sqlite3.connect(stack.tmp / "smsgate.db")
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
        print(f"log             {stack.tmp / 'gateway.log'}")
        print(f"requests        {res.sent} over {args.concurrency} connections, statuses {res.statuses}")
        print(f"accept rate     {res.ok / res.seconds:,.0f} msg/s  "
              f"(p50 {res.percentile(50):.1f} ms, p99 {res.percentile(99):.1f} ms)")  # fmt: skip
        print(f"delivered       {delivered} of {res.ok}; "
              f"first request -> last delivered {e2e:.2f} s = {delivered / e2e:,.0f} msg/s")  # fmt: skip


if __name__ == "__main__":
    main()
