"""KPN batch accept rate and end-to-end rate: ``POST /communication/kpn/sms/send`` -> smsgate -> SMPP -> simulator.

Starts the SMSC simulator and ``smsgate serve`` (SQLite, fsync'd group commit: a 200 means the batch is durable),
sends B batch calls of R recipients each over C connections, then waits until the simulator has every submit_sm.
Prints recipients accepted per second (durable), call latency, and the end-to-end rate (first call -> last
submit_sm). Bounded in count (B x R) and time (--time-limit per phase); every address is 127.0.0.1.

    .venv/bin/python bench/bench_batch.py --batches 20 --recipients 5000 -c 2
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import pathlib
import statistics
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import driver


def _call(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, float]:
    t0 = time.perf_counter()
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            r.read()
            status = r.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    return status, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--recipients", type=int, default=5000, help="per call (at most SMSGATE_KPN_BATCH_MAX)")
    ap.add_argument("-c", "--concurrency", type=int, default=2)
    ap.add_argument("--window", type=int, default=50, help="SMPP window")
    ap.add_argument("--time-limit", type=float, default=120.0)
    ap.add_argument("--accept-only", action="store_true",
                    help="the simulator answers no submit_sm during the run (--mode slow): the dispatcher takes the jobs "
                    "but its window stays full, so accept runs without submits competing for the CPU; no e2e figure")  # fmt: skip
    args = ap.parse_args()
    with driver.smpp(
        "smsgate-batch-", window=args.window, stall=args.accept_only, sim_port=27751, ctl_port=27761, gw_port=18281
    ) as stack:
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {stack.token(stack.account())}"}
        bodies = [
            json.dumps({"sender": "bench", "messages": [
                {"mobile_number": f"06{20000000 + (b * args.recipients + i) % 70_000_000:08d}", "content": "hello"}
                for i in range(args.recipients)]}).encode()
            for b in range(args.batches)
        ]  # fmt: skip
        before = stack.submits()
        cpu0 = driver.cpu_seconds(stack.gateway.pid)
        t0 = time.time()
        with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
            futures = [pool.submit(_call, stack.base + "/communication/kpn/sms/send", b, headers) for b in bodies]
            results = [f.result(timeout=args.time_limit) for f in futures]
        accept_s = time.time() - t0
        ok = sum(1 for status, _ in results if status == 200) * args.recipients
        cpu = driver.cpu_seconds(stack.gateway.pid) - cpu0
        got = before if args.accept_only else stack.wait_submits(before, ok, args.time_limit)
        e2e_s = time.time() - t0
        tmp = stack.tmp
    latencies = sorted(lat for _, lat in results)
    statuses = {s: sum(1 for x, _ in results if x == s) for s in {x for x, _ in results}}
    row = {
        "calls": len(results), "recipients_per_call": args.recipients, "concurrency": args.concurrency,
        "statuses": statuses, "recipients_accepted": ok, "accept_s": accept_s, "accept_rate": ok / accept_s,
        "call_p50_ms": statistics.median(latencies) * 1000, "call_max_ms": latencies[-1] * 1000,
        "gateway_cpu_us_per_recipient_accept": cpu / max(1, ok) * 1e6,
        "submits": got - before, "e2e_s": e2e_s, "e2e_rate": (got - before) / e2e_s,
    }  # fmt: skip
    print(f"\nsmsgate KPN batch, {os.cpu_count()} CPUs, SQLite synchronous=FULL, SMPP window {args.window}\n")
    print("| calls x recipients | conc. | accepted | accept recipients/s (durable) | call p50/max ms | "
          "gateway CPU µs/recipient (accept) | submit_sm | e2e recipients/s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {row['calls']} x {args.recipients} | {args.concurrency} | {ok} | {row['accept_rate']:,.0f} | "
          f"{row['call_p50_ms']:.0f}/{row['call_max_ms']:.0f} | {row['gateway_cpu_us_per_recipient_accept']:.1f} | "
          f"{row['submits']} | {row['e2e_rate']:,.0f} |")  # fmt: skip
    print(f"\nraw: {json.dumps(row)}\nlogs: {tmp}")


if __name__ == "__main__":
    main()
