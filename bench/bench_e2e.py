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
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import load

CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree(pid: int) -> list[int]:
    """The process and its descendants (``serve --processes 2`` runs the delivery process as a child)."""
    out = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            for child in fh.read().split():
                out += _tree(int(child))
    except OSError:
        pass
    return out


def _cpu_seconds(pid: int) -> float:
    """CPU seconds of the process and its children alive now."""
    total = 0.0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK
    return total


def _rss_mb(pid: int, key: str = "VmHWM") -> float:
    """Summed over the process and its children (each one's own peak for VmHWM)."""
    total = 0.0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def _post(url: str, data: bytes, headers: dict[str, str]) -> dict[str, object]:
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def _requests(base: str, dialect: str, acc: dict[str, str]) -> tuple[str, bytes, dict[str, str]]:
    basic = "Basic " + base64.b64encode(f"{acc['api_key']}:{acc['api_secret']}".encode()).decode()
    if dialect == "kpn":
        tok = _post(
            base + "/oauth/client_credential/accesstoken?grant_type=client_credentials",
            f"client_id={acc['api_key']}&client_secret={acc['api_secret']}".encode(),
            {"Content-Type": "application/x-www-form-urlencoded"},
        )["access_token"]
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


def _submits(ctl_port: int) -> int:
    return int(_get(f"http://127.0.0.1:{ctl_port}/stats").get("submits", 0))  # type: ignore[call-overload]


def _soak(args: argparse.Namespace, base: str, acc: dict[str, str], pid: int, ctl_port: int) -> list[dict[str, float]]:
    """Keep sending in steps and record the gateway's RSS after each (is memory flat over a long run?)."""
    url, body, headers = _requests(base, "kpn", acc)
    out: list[dict[str, float]] = []
    sent = 0
    while sent < args.soak:
        step = min(args.soak_step, args.soak - sent)
        before = _submits(ctl_port)
        t0 = time.time()
        res = asyncio.run(load.run(url, n=step, concurrency=args.concurrency, body=body, headers=headers,
                                   time_limit=args.time_limit))  # fmt: skip
        deadline = time.time() + args.time_limit
        while _submits(ctl_port) - before < res.ok and time.time() < deadline:
            time.sleep(0.05)
        sent += res.sent
        row = {
            "sent": sent,
            "rate": res.ok / (time.time() - t0),
            "rss_mb": _rss_mb(pid, "VmRSS"),
            "peak_rss_mb": _rss_mb(pid),
        }
        out.append(row)
        print(f"soak: {row}", flush=True)
        if res.sent < step:  # the time limit cut the step short
            break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="requests per dialect")
    ap.add_argument("-c", "--concurrency", type=int, default=20)
    ap.add_argument("--dialects", default="kpn,kaarai,vonage")
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--processes", type=int, default=1, help="serve --processes (2: accept and delivery, SQLite)")
    ap.add_argument("--time-limit", type=float, default=600.0)
    ap.add_argument(
        "--soak", type=int, default=0, help="then send this many more (KPN) and print RSS every --soak-step"
    )
    ap.add_argument("--soak-step", type=int, default=100_000)
    ap.add_argument("--log-level", default="warning", help="the gateway's; info turns the access log on")
    args = ap.parse_args()
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="smsgate-e2e-"))
    sim_port, ctl_port, gw_port = 27750, 27760, 18280
    cfg = tmp / "smsgate.toml"
    cfg.write_text(
        f'[[connectors]]\nname = "sim"\ntype = "smpp"\nhost = "127.0.0.1"\nport = {sim_port}\n'
        f'system_id = "smsgate"\npassword = "x"\nwindow = {args.window}\n\n[routing]\ndefault = "sim"\n'
    )
    env = {
        **os.environ,
        "SMSGATE_DATA_DIR": str(tmp),
        "SMSGATE_SANDBOX": "false",
        "SMSGATE_PROCESSES": str(args.processes),
    }
    py = sys.executable
    sim = subprocess.Popen([py, "-m", "smsgate", "smsc-sim", "--port", str(sim_port), "--control-port", str(ctl_port)],
                           stdout=open(tmp / "sim.log", "w"), stderr=subprocess.STDOUT)  # noqa: SIM115  # fmt: skip
    gw = subprocess.Popen([py, "-m", "smsgate", "serve", "--port", str(gw_port), "--config", str(cfg), "--log-level", args.log_level],
                          env=env, stdout=open(tmp / "gateway.log", "w"), stderr=subprocess.STDOUT)  # noqa: SIM115  # fmt: skip
    base = f"http://127.0.0.1:{gw_port}"
    rows = []
    try:
        _wait_http(f"http://127.0.0.1:{ctl_port}/stats")
        _wait_http(base + "/healthz")
        acc = json.loads(subprocess.check_output(
            [py, "-m", "smsgate", "accounts", "create", "bench", "--json", "--balance", "100000000", "--default-sender", "bench"],
            env=env, text=True))  # fmt: skip
        for dialect in args.dialects.split(","):
            url, body, headers = _requests(base, dialect, acc)
            before = int(_get(f"http://127.0.0.1:{ctl_port}/stats").get("submits", 0))  # type: ignore[call-overload]
            cpu0 = {"gateway": _cpu_seconds(gw.pid), "simulator": _cpu_seconds(sim.pid)}
            res = asyncio.run(load.run(url, n=args.n, concurrency=args.concurrency, body=body, headers=headers,
                                       time_limit=args.time_limit))  # fmt: skip
            deadline = time.time() + args.time_limit
            got = before
            while time.time() < deadline:
                got = int(_get(f"http://127.0.0.1:{ctl_port}/stats").get("submits", 0))  # type: ignore[call-overload]
                if got - before >= res.ok:
                    break
                time.sleep(0.02)
            done_at = time.time()
            e2e = done_at - res.first_sent_at
            cpu = {k: _cpu_seconds(p) - cpu0[k] for k, p in (("gateway", gw.pid), ("simulator", sim.pid))}
            rows.append({
                "dialect": dialect, "n": res.sent, "c": args.concurrency, "accepted": res.ok,
                "statuses": res.statuses, "accept_rate": res.ok / res.seconds, "submits": got - before,
                "e2e_s": e2e, "e2e_rate": (got - before) / e2e, "p50_ms": res.percentile(50), "p99_ms": res.percentile(99),
                "gateway_cpu_us_per_msg": cpu["gateway"] / max(1, res.ok) * 1e6,
                "gateway_cpu_pct": cpu["gateway"] / e2e * 100, "simulator_cpu_pct": cpu["simulator"] / e2e * 100,
                "gateway_peak_rss_mb": _rss_mb(gw.pid), "gateway_rss_mb": _rss_mb(gw.pid, "VmRSS"),
            })  # fmt: skip
        soak = _soak(args, base, acc, gw.pid, ctl_port) if args.soak else []
    finally:
        gw.terminate()
        sim.terminate()
        gw.wait(20)
        sim.wait(20)
    print(f"\nsmsgate end-to-end, {os.cpu_count()} CPUs, SQLite synchronous=FULL, SMPP window {args.window}\n")
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
