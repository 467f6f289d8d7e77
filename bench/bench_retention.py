"""Does the retention sweep hold sends up? (issue #21) KPN send latency with no sweep, then while the sweep deletes
``--old`` messages (200,000 by default) that are older than the limit, on one SQLite gateway.

The old messages (each with a part and an event) are written straight into the database file before the gateway
starts; the first run keeps everything (quiet) and sends for ``--seconds``; the second sets
SMSGATE_RETENTION_DAYS=30, so its sweep starts at once, and sends until the sweep has deleted every old message
(at most ``--limit`` seconds). Both send with ``--threads`` closed-loop clients and print p50/p99; the target is
p99 while sweeping within 2x of quiet. Bounded: ``--seconds`` + ``--limit`` and the seeding.

    .venv/bin/python bench/bench_retention.py [--old 200000] [--seconds 20] [--limit 420] [--threads 4]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import httpx

from smsgate.store import accounts as store_accounts
from smsgate.store import engine as store_engine
from smsgate.store import migrate

DAY = 86_400.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(db: pathlib.Path, account_id: str, count: int) -> None:
    """``count`` delivered messages from 100 days ago, each with one part and one event."""
    old = time.time() - 100 * DAY
    con = sqlite3.connect(db)
    with con:
        for start in range(0, count, 20_000):
            ids = [str(uuid.uuid4()) for _ in range(min(20_000, count - start))]
            con.executemany(
                "INSERT INTO messages (id, account_id, direction, dialect, sender, recipient, text, encoding, "
                "parts_count, status, price, created_at, updated_at) VALUES (?, ?, 'outbound', 'kpn', 'bench', "
                "'+31612345678', 'old text', 'gsm7', 1, 'delivered', 7000000, ?, ?)",
                [(m, account_id, old + i * 0.01, old + i * 0.01) for i, m in enumerate(ids, start)],
            )
            con.executemany(
                "INSERT INTO parts (id, message_id, idx, total, status, data_coding, udh, payload, text, price) "
                "VALUES (?, ?, 1, 1, 'delivered', 0, x'', x'6f6c64', 'old text', 7000000)",
                [(uuid.uuid4().hex[:16].upper(), m) for m in ids],
            )
            con.executemany(
                "INSERT INTO events (message_id, account_id, type, at) VALUES (?, ?, 'delivered', ?)",
                [(m, account_id, old) for m in ids],
            )
    con.close()


def count_old(db: pathlib.Path) -> int:
    with sqlite3.connect(db, timeout=10) as con:
        return int(
            con.execute("SELECT count(*) FROM messages WHERE created_at < ?", (time.time() - 30 * DAY,)).fetchone()[0]
        )


def serve(data: pathlib.Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "smsgate", "serve", "--port", str(port), "--log-level", "warning"],
        env={**os.environ, "SMSGATE_DATA_DIR": str(data), "SMSGATE_SANDBOX_RECEIPT_DELAY": "0.05", **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(url + "/healthz", timeout=0.5).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("gateway did not start")


def load(url: str, key: str, secret: str, seconds: float, threads: int, done: threading.Event) -> list[float]:
    token = httpx.post(
        url + "/oauth/client_credential/accesstoken?grant_type=client_credentials",
        data={"client_id": key, "client_secret": secret},
    ).json()["access_token"]
    body = {"messages": [{"mobile_number": "+31612345679", "content": "bench"}]}
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run() -> None:
        with httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=10) as c:
            while time.monotonic() < deadline and not done.is_set():
                t = time.perf_counter()
                c.post("/messaging/sms-kpn/v1/send", json=body).raise_for_status()
                with lock:
                    latencies.append((time.perf_counter() - t) * 1000)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sorted(latencies)


def figures(name: str, xs: list[float], seconds: float) -> float:
    p99 = xs[max(0, int(len(xs) * 0.99) - 1)]
    print(
        f"{name:9s} sends {len(xs):6d} ({len(xs) / seconds:6.0f}/s)  p50 {xs[len(xs) // 2]:6.2f} ms  p99 {p99:6.2f} ms"
    )
    return p99


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--old", type=int, default=200_000)
    ap.add_argument("--seconds", type=float, default=20.0, help="of quiet sends")
    ap.add_argument("--limit", type=float, default=420.0, help="most seconds of sends while sweeping")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--batch", type=int, default=0, help="SMSGATE_RETENTION_BATCH (0: the default)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = pathlib.Path(tmp)
        db = data / "smsgate.db"

        async def account() -> tuple[str, str, str]:
            engine = store_engine.create(f"sqlite+aiosqlite:///{db}")
            try:
                await migrate.upgrade(engine)
                acc, secret = await store_accounts.AccountStore(engine).create(
                    "bench", balance=10**16, default_sender="bench"
                )
                return acc.id, acc.api_key, secret
            finally:
                await engine.dispose()

        account_id, key, secret = asyncio.run(account())
        t = time.monotonic()
        seed(db, account_id, args.old)
        print(f"seeded {args.old} old messages in {time.monotonic() - t:.1f} s")

        proc, url = serve(data, {})
        try:
            quiet = figures(
                "quiet", load(url, key, secret, args.seconds, args.threads, threading.Event()), args.seconds
            )
        finally:
            proc.terminate()
            proc.wait(15)

        swept = {"SMSGATE_RETENTION_DAYS": "30", **({"SMSGATE_RETENTION_BATCH": str(args.batch)} if args.batch else {})}
        proc, url = serve(data, swept)  # its sweep starts at once
        try:
            done = threading.Event()
            started = time.monotonic()

            def watch() -> None:
                while count_old(db) > 0 and time.monotonic() - started < args.limit:
                    time.sleep(1.0)  # a count over what is left: not too often, it competes for the CPU
                done.set()

            threading.Thread(target=watch, daemon=True).start()
            xs = load(url, key, secret, args.limit, args.threads, done)
            sweeping = figures("sweeping", xs, time.monotonic() - started)
            while not done.wait(0.5):
                pass
            left = count_old(db)
            print(f"sweep: {args.old - left} of {args.old} old messages deleted in {time.monotonic() - started:.1f} s")
        finally:
            proc.terminate()
            proc.wait(15)
    print(f"p99 sweeping / quiet = {sweeping / quiet:.2f} (target <= 2)")


if __name__ == "__main__":
    main()
