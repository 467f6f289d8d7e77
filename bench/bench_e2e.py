"""End-to-end benchmark: HTTP send (each dialect) -> smsgate -> SMPP -> SMSC simulator, on loopback.

One command starts the simulator and the gateway (SQLite, fsync'd group commit), sends N requests per dialect over
C keep-alive connections, waits until the simulator has every submit_sm, and prints a table: accept rate, end-to-end
rate (first request -> last submit_sm), send latency p50/p99, CPU per process and peak RSS.

    .venv/bin/python bench/bench_e2e.py --n 20000 -c 20 --dialects kpn,kaarai,vonage

Bounded in count (N per dialect) and time (--time-limit per phase); every address is 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import driver
import load


def _requests(stack: driver.Stack, dialect: str, acc: dict[str, str]) -> tuple[str, bytes, dict[str, str]]:
    base = stack.base
    basic = "Basic " + base64.b64encode(f"{acc['api_key']}:{acc['api_secret']}".encode()).decode()
    if dialect == "kpn":
        tok = stack.token(acc)
        body = {"sender": "bench", "messages": [{"mobile_number": "0612345678", "content": "hello"}]}
        return (base + "/messaging/sms-kpn/v1/send", json.dumps(body).encode(),
                {"Content-Type": "application/json", "Authorization": f"Bearer {tok}"})  # fmt: skip
    if dialect == "kaarai":
        body = {"to": "31612345678", "from": "bench", "text": "hello"}
        return (
            base + "/v1/send-sms",
            json.dumps(body).encode(),
            {"Content-Type": "application/json", "Authorization": basic},
        )
    if dialect == "vonage":
        return (base + "/sms/json", b"from=bench&to=31612345678&text=hello",
                {"Content-Type": "application/x-www-form-urlencoded", "Authorization": basic})  # fmt: skip
    raise SystemExit(f"unknown dialect {dialect}")


def _soak(args: argparse.Namespace, stack: driver.Stack, acc: dict[str, str]) -> list[dict[str, float]]:
    """Keep sending in steps and record the gateway's RSS after each (is memory flat over a long run?)."""
    url, body, headers = _requests(stack, "kpn", acc)
    pid = stack.gateway.pid
    out: list[dict[str, float]] = []
    sent = 0
    while sent < args.soak:
        step = min(args.soak_step, args.soak - sent)
        before = stack.submits()
        t0 = time.time()
        res = asyncio.run(load.run(url, n=step, concurrency=args.concurrency, body=body, headers=headers,
                                   time_limit=args.time_limit))  # fmt: skip
        stack.wait_submits(before, res.ok, args.time_limit)
        sent += res.sent
        row = {"sent": sent, "rate": res.ok / (time.time() - t0), "rss_mb": driver.rss_mb(pid, "VmRSS"),
               "peak_rss_mb": driver.rss_mb(pid)}  # fmt: skip
        out.append(row)
        print(f"soak: {row}", flush=True)
        if res.sent < step:  # the time limit cut the step short
            break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="requests per dialect")
    ap.add_argument("-c", "--concurrency", type=int, default=20)
    ap.add_argument("--rate", type=float, default=0.0,
                    help="open loop: offer this many requests/s, evenly spaced (latency from each one's due time); "
                         "give -c well above rate x p99 (e.g. 64)")  # fmt: skip
    ap.add_argument("--dialects", default="kpn,kaarai,vonage")
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--processes", type=int, default=1, help="serve --processes (2: accept and delivery, SQLite)")
    ap.add_argument("--time-limit", type=float, default=600.0)
    ap.add_argument(
        "--soak", type=int, default=0, help="then send this many more (KPN) and print RSS every --soak-step"
    )
    ap.add_argument("--soak-step", type=int, default=100_000)
    ap.add_argument("--log-level", default="warning", help="the gateway's; info turns the access log on")
    ap.add_argument("--ports", default="27750,27760,18280",
                    help="simulator, its control and the gateway's: another bench running at once needs others")  # fmt: skip
    args = ap.parse_args()
    rows = []
    sim_port, ctl_port, gw_port = (int(p) for p in args.ports.split(","))
    with driver.smpp(
        "smsgate-e2e-",
        window=args.window,
        args=("--log-level", args.log_level, "--processes", str(args.processes)),
        sim_port=sim_port,
        ctl_port=ctl_port,
        gw_port=gw_port,
    ) as stack:
        acc = stack.account()
        gw_pid, sim_pid = stack.gateway.pid, stack.simulator_pid
        for dialect in args.dialects.split(","):
            url, body, headers = _requests(stack, dialect, acc)
            before = stack.submits()
            cpu0 = {"gateway": driver.cpu_seconds(gw_pid), "simulator": driver.cpu_seconds(sim_pid)}
            res = asyncio.run(load.run(url, n=args.n, concurrency=args.concurrency, body=body, headers=headers,
                                       time_limit=args.time_limit, rate=args.rate))  # fmt: skip
            got = stack.wait_submits(before, res.ok, args.time_limit)
            e2e = time.time() - res.first_sent_at
            cpu = {k: driver.cpu_seconds(p) - cpu0[k] for k, p in (("gateway", gw_pid), ("simulator", sim_pid))}
            rows.append({
                "dialect": dialect, "n": res.sent, "c": args.concurrency, "accepted": res.ok,
                "statuses": res.statuses, "accept_rate": res.ok / res.seconds, "submits": got - before,
                "e2e_s": e2e, "e2e_rate": (got - before) / e2e, "p50_ms": res.percentile(50), "p99_ms": res.percentile(99),
                "gateway_cpu_us_per_msg": cpu["gateway"] / max(1, res.ok) * 1e6,
                "gateway_cpu_pct": cpu["gateway"] / e2e * 100, "simulator_cpu_pct": cpu["simulator"] / e2e * 100,
                "gateway_peak_rss_mb": driver.rss_mb(gw_pid), "gateway_rss_mb": driver.rss_mb(gw_pid, "VmRSS"),
            })  # fmt: skip
        soak = _soak(args, stack, acc) if args.soak else []
        tmp = stack.tmp
    loop = f"open loop at {args.rate:,.0f} req/s offered" if args.rate else "closed loop"
    print(f"\nsmsgate end-to-end, {os.cpu_count()} CPUs, SQLite synchronous=FULL, SMPP window {args.window}, {loop}\n")
    print(
        "| dialect | N | conc. | accepted | accept msg/s | e2e msg/s | p50/p99 ms | gateway CPU µs/msg | gateway CPU % | sim CPU % | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dialect']} | {r['n']} | {r['c']} | {r['accepted']} | {r['accept_rate']:,.0f} | {r['e2e_rate']:,.0f} | "
              f"{r['p50_ms']:.1f}/{r['p99_ms']:.1f} | {r['gateway_cpu_us_per_msg']:,.0f} | {r['gateway_cpu_pct']:.0f} | "
              f"{r['simulator_cpu_pct']:.0f} | {r['gateway_peak_rss_mb']:.0f} |")  # fmt: skip
    if soak:
        print("\n| messages sent | msg/s over the step | gateway RSS MB | peak RSS MB |\n|---|---|---|---|")
        for r in soak:
            print(f"| {r['sent']:,} | {r['rate']:,.0f} | {r['rss_mb']:.0f} | {r['peak_rss_mb']:.0f} |")
    print(f"\nraw: {json.dumps({'rows': rows, 'soak': soak})}\nlogs: {tmp}")


if __name__ == "__main__":
    main()
