"""Accept and end-to-end rates of one node and of two nodes on one PostgreSQL (+ Redis for the shared limits).

For each layout: a fresh throwaway database, N KPN v1 sends spread over the nodes (C keep-alive connections
per node), then wait until the sandbox network has reported every message delivered. Prints the accept
rate (2xx answers per second), latency p50/p99, the end-to-end rate (first request to last message
delivered) and the nodes' CPU per message delivered over that time. PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (or SMSGATE_TEST_POSTGRES/_REDIS).

    .venv/bin/python bench/bench_multinode.py --n 10000 -c 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import sys
import tempfile
import time

import asyncpg

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT)]
import driver  # noqa: E402
import load  # noqa: E402
from tests import support  # noqa: E402


async def delivered(dsn: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM messages WHERE status = 'delivered'"))
    finally:
        await conn.close()


def run_layout(nodes_count: int, n: int, concurrency: int) -> dict[str, float]:
    with support.postgres_database() as db:
        env = {
            "SMSGATE_DATABASE_URL": db,
            "SMSGATE_REDIS_URL": support.require_redis(),
            "SMSGATE_REDIS_PREFIX": f"smsgate-bench-{os.urandom(4).hex()}:",
            "SMSGATE_NODE_DEAD_AFTER": "10",
            "SMSGATE_NODE_HEARTBEAT_INTERVAL": "2",
        }
        tmp = pathlib.Path(tempfile.mkdtemp(prefix="smsgate-bench-mn-"))
        nodes = [support.GatewayProcess(tmp / f"node{i}", env=env).start(timeout=60) for i in range(nodes_count)]
        try:
            acc = nodes[0].create_account("bench", balance=10**8 * 10**7)
            body = json.dumps({"messages": [{"mobile_number": "+31612345678", "content": "bench"}]}).encode()
            per_node = [n // nodes_count + (1 if i < n % nodes_count else 0) for i in range(nodes_count)]

            async def send() -> list[load.LoadResult]:
                return list(
                    await asyncio.gather(
                        *(
                            load.run(
                                node.url + "/messaging/sms-kpn/v1/send",
                                n=k,
                                concurrency=concurrency,
                                body=body,
                                headers={
                                    "Authorization": "Bearer " + node.token(acc),
                                    "Content-Type": "application/json",
                                },
                            )
                            for node, k in zip(nodes, per_node, strict=True)
                        )
                    )
                )

            pids = [node.proc.pid for node in nodes if node.proc is not None]
            cpu0 = sum(driver.cpu_seconds(p) for p in pids)
            t0 = time.time()
            results = asyncio.run(send())
            ok = sum(r.ok for r in results)
            accept_s = max(r.last_answer_at for r in results) - min(r.first_sent_at for r in results)
            deadline = time.monotonic() + 300
            dsn = db
            while asyncio.run(delivered(dsn)) < ok and time.monotonic() < deadline:
                time.sleep(0.2)
            e2e_s = time.time() - t0
            cpu = sum(driver.cpu_seconds(p) for p in pids) - cpu0
            done = asyncio.run(delivered(dsn))
            lat = sorted(x for r in results for x in r.latencies_ms)
            return {
                "nodes": nodes_count,
                "sent": n,
                "accepted": ok,
                "accept_per_s": ok / accept_s,
                "p50_ms": lat[len(lat) // 2] if lat else 0.0,
                "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0.0,
                "delivered": done,
                "end_to_end_per_s": done / e2e_s,
                "cpu_us_per_msg": cpu / max(done, 1) * 1e6,
            }
        finally:
            for node in nodes:
                node.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000, help="messages per layout")
    ap.add_argument("-c", "--concurrency", type=int, default=16, help="connections per node")
    ap.add_argument("--nodes", default="1,2", help="layouts to run, e.g. 1,2,3")
    args = ap.parse_args()
    print(f"{os.cpu_count()} CPUs; {args.n} messages per layout; {args.concurrency} connections per node")
    for count in (int(x) for x in args.nodes.split(",")):
        r = run_layout(count, args.n, args.concurrency)
        print(
            f"{r['nodes']} node(s): accepted {r['accepted']}/{r['sent']} at {r['accept_per_s']:.0f}/s "
            f"(p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms); "
            f"delivered {r['delivered']} end-to-end at {r['end_to_end_per_s']:.0f}/s; "
            f"nodes' CPU {r['cpu_us_per_msg']:.0f} µs/msg",
            flush=True,
        )


if __name__ == "__main__":
    main()
