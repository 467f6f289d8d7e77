"""What an Idempotency-Key costs a KPN send, on the embedded default (SQLite, sandbox network).

Three rounds against one `smsgate serve`: no header (the plain send), a new key per request (the key row written in
the accept transaction, one lookup before), and one key sent again and again (every answer a replay: one lookup, no
send). Prints rate and latency p50/p99 per round. Keep N small on a shared machine; the rounds are back to back.

    .venv/bin/python bench/bench_idempotency.py --n 3000 -c 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import statistics
import sys
import time
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import driver


async def round_(port: int, token: str, n: int, concurrency: int, key: str | None) -> tuple[float, list[float]]:
    """``key``: None no header, "" a new one per request, else that one for every request."""
    body = json.dumps({"messages": [{"mobile_number": "0612345678", "content": "hello"}]}).encode()
    remaining, latencies = n, []

    async def worker() -> None:
        nonlocal remaining
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while remaining > 0:
                remaining -= 1
                extra = "" if key is None else f"Idempotency-Key: {key or uuid.uuid4()}\r\n"
                head = (f"POST /messaging/sms-kpn/v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                        f"Content-Type: application/json\r\n{extra}Content-Length: {len(body)}\r\n\r\n")  # fmt: skip
                t0 = time.perf_counter()
                writer.write(head.encode() + body)
                assert int((await reader.readline()).split(b" ", 2)[1]) == 200
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:].strip())
                await reader.readexactly(length)
                latencies.append((time.perf_counter() - t0) * 1000)
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, latencies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("-c", "--concurrency", type=int, default=8)
    ap.add_argument("--port", type=int, default=18183)
    args = ap.parse_args()
    with driver.gateway("smsgate-bench-", args.port, env={"SMSGATE_ACCESS_LOG": "false"}) as stack:
        token = stack.token(stack.account())
        for name, key in (("no header", None), ("new key each", ""), ("same key (replays)", "bench-key")):
            seconds, lat = asyncio.run(round_(args.port, token, args.n, args.concurrency, key))
            q = statistics.quantiles(lat, n=100)
            print(f"{name:20} {args.n / seconds:8,.0f} req/s   p50 {q[49]:6.2f} ms   p99 {q[98]:6.2f} ms")


if __name__ == "__main__":
    main()
