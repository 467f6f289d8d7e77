"""Relay throughput: gateway A sends through an HTTP connector to gateway B's own dialect, on loopback.

B runs in sandbox mode; A has one connector of the chosen type (``kpn``, ``vonage`` or ``kaarai``) pointing at it.
N KPN v1 sends to A over C keep-alive connections, then wait until B has stored all N. Prints A's accept rate, the
end-to-end rate (first request to A → last message stored on B) and the CPU each gateway spent per message.

    .venv/bin/python bench/bench_relay.py --n 5000 -c 16 --type kpn --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import sqlite3
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]
import load  # noqa: E402
from tests import support  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stored(gw: support.GatewayProcess) -> int:
    with sqlite3.connect(gw.data_dir / "smsgate.db", timeout=5) as db:
        return int(db.execute("SELECT count(*) FROM messages WHERE direction = 'outbound'").fetchone()[0])


def connector(kind: str, b: support.GatewayProcess, acc: dict[str, str], concurrency: int) -> dict[str, object]:
    key, secret = acc["api_key"], acc["api_secret"]
    tables: dict[str, dict[str, object]] = {
        "kpn": {"type": "kpn", "base_url": b.url, "client_id": key, "client_secret": secret},
        "vonage": {"type": "vonage", "base_url": b.url, "api_key": key, "api_secret": secret, "callback": False},
        "kaarai": {"type": "kaarai", "url": b.url + "/v1/send-sms", "username": key, "password": secret},
    }
    return {"name": "up", **tables[kind], "concurrency": concurrency}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("-c", "--connections", type=int, default=16, help="client connections to A")
    ap.add_argument("--type", default="kpn", choices=["kpn", "vonage", "kaarai"])
    ap.add_argument("--concurrency", type=int, default=16, help="the connector's requests in flight")
    args = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="smsgate-bench-relay-"))
    b = support.GatewayProcess(tmp / "b").start()
    try:
        acc_b = b.create_account("relay", balance=10**8 * 10**7)
        (tmp / "a").mkdir()
        with support.relay_gateway(tmp / "a", [connector(args.type, b, acc_b, args.concurrency)], []) as a:
            acc_a = a.create_account("bench", balance=10**8 * 10**7)
            body = json.dumps({"sender": "bench", "messages": [{"mobile_number": "+31612345678", "content": "bench"}]})
            headers = {"Authorization": "Bearer " + a.token(acc_a), "Content-Type": "application/json"}
            assert a.proc is not None and b.proc is not None
            cpu_a, cpu_b = cpu_seconds(a.proc.pid), cpu_seconds(b.proc.pid)
            started = time.time()
            res = asyncio.run(
                load.run(a.url + "/messaging/sms-kpn/v1/send", n=args.n, concurrency=args.connections,
                         body=body.encode(), headers=headers)
            )  # fmt: skip
            deadline = time.monotonic() + 300
            while stored(b) < res.ok and time.monotonic() < deadline:
                time.sleep(0.2)
            e2e = time.time() - started
            on_b = stored(b)
            used_a, used_b = cpu_seconds(a.proc.pid) - cpu_a, cpu_seconds(b.proc.pid) - cpu_b
    finally:
        b.stop()
    print(f"{os.cpu_count()} CPUs; {args.type} connector, concurrency {args.concurrency}; {args.n} sends over "
          f"{args.connections} connections")  # fmt: skip
    print(f"A accepted {res.ok}/{res.sent} at {res.ok / res.seconds:,.0f}/s (p50 {res.percentile(50):.1f} ms)")
    print(f"B stored {on_b}: first request to A -> last stored on B {e2e:.1f}s = {on_b / e2e:,.0f} msg/s relayed")
    print(
        f"CPU per message: A {used_a / max(on_b, 1) * 1e3:.2f} ms (accept + relay), B {used_b / max(on_b, 1) * 1e3:.2f} ms"
    )


if __name__ == "__main__":
    main()
