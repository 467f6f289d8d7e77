"""A small asyncio HTTP/1.1 keep-alive load client: N requests over C connections, with latencies.

Closed loop by default (each connection sends its next request when the last is answered). With ``rate`` it is an
open loop: request i is due at ``start + i / rate``, evenly spaced (hey's ``-q`` starts all its workers on the same
tick, so requests arrive in bursts of C), and its latency counts from when it was due, so a request that waited for
a free connection counts that wait (no coordinated omission, as wrk2 measures). C must then exceed rate x latency.

Loopback only, bounded in count and time. Used by the bench scripts; stdlib only so its own cost stays small.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import urllib.parse


@dataclasses.dataclass
class LoadResult:
    sent: int
    ok: int
    statuses: dict[int, int]
    seconds: float
    latencies_ms: list[float]
    first_sent_at: float
    last_answer_at: float

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return 0.0
        s = sorted(self.latencies_ms)
        return s[min(len(s) - 1, int(len(s) * p / 100))]


def _check_loopback(url: str) -> urllib.parse.SplitResult:
    u = urllib.parse.urlsplit(url)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing to load-test a non-loopback address: {u.hostname}")
    return u


async def run(
    url: str,
    *,
    n: int,
    concurrency: int,
    method: str = "POST",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    time_limit: float = 300.0,
    rate: float = 0.0,
) -> LoadResult:
    u = _check_loopback(url)
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    head = f"{method} {path} HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Length: {len(body)}\r\n"
    for k, v in (headers or {}).items():
        head += f"{k}: {v}\r\n"
    request = (head + "\r\n").encode() + body
    remaining = n
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    deadline = time.monotonic() + time_limit
    first = time.time()
    last = first
    start = time.perf_counter()

    async def worker() -> None:
        nonlocal remaining, last
        reader, writer = await asyncio.open_connection(u.hostname, u.port or 80)
        try:
            while remaining > 0 and time.monotonic() < deadline:
                index = n - remaining
                remaining -= 1
                t0 = time.perf_counter()
                if rate:
                    due = start + index / rate
                    if due > t0:
                        await asyncio.sleep(due - t0)
                    t0 = due
                writer.write(request)
                status_line = await reader.readline()
                status = int(status_line.split(b" ", 2)[1])
                length = 0
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:].strip())
                if length:
                    await reader.readexactly(length)
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
                last = time.time()
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    ok = sum(v for k, v in statuses.items() if 200 <= k < 300)
    return LoadResult(n - max(remaining, 0), ok, statuses, elapsed, latencies, first, last)
