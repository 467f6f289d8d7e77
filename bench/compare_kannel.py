"""smsgate beside Kannel, in one run, with the same load driver and the same SMSC sink.

Uses the peer scripts in ``../shared/peers`` (or ``--peers DIR``): the SMPP sink on 127.0.0.1:2775, Kannel 1.4.5
(bearerbox + smsbox) and ``run-bench.sh`` with ``hey``. Kannel is measured first (its stock sendsms GET); then
smsgate is started on SQLite (fsync'd group commit) with its SMPP connector pointed at the same sink, and measured
through the KPN dialect (OAuth2 token + JSON POST) by ``run-bench.sh custom``. Prints both rows and the ratio.

    .venv/bin/python bench/compare_kannel.py --n 20000 -c 20 --runs 3

Install the peers once with ``../shared/peers/setup-sink.sh && ../shared/peers/setup-kannel.sh`` (apt + a venv).
The driver waits for a quiet machine before each run and marks runs disturbed by other load. Bounded: N requests
per run, ``--runs`` runs per gateway, every address on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = pathlib.Path(__file__).resolve().parent
# the peers' scripts sit in shared/peers next to the checkout (``/work/main``) or next to its worktrees' parent
PEERS = next(
    (d / "shared" / "peers" for d in HERE.parents if (d / "shared" / "peers" / "run-bench.sh").exists()),
    HERE.parent.parent / "shared" / "peers",
)
KPN_BODY = '{"sender":"bench","messages":[{"mobile_number":"0612345678","content":"hello"}]}'


def _sh(peers: pathlib.Path, script: str, *args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([str(peers / script), *args], check=True, env=env)


def _wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def _summary(results: pathlib.Path, peer: str) -> dict[str, object]:
    files = sorted(results.glob(f"{peer}-*.json"))
    if not files:
        raise SystemExit(f"no results for {peer} in {results}")
    return json.loads(files[-1].read_text())["summary"]  # type: ignore[no-any-return]


def _smsgate(args: argparse.Namespace, peers: pathlib.Path, results: pathlib.Path, env: dict[str, str]) -> None:
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="smsgate-vs-kannel-"))
    cfg = tmp / "smsgate.toml"
    cfg.write_text(
        '[[connectors]]\nname = "sink"\ntype = "smpp"\nhost = "127.0.0.1"\nport = 2775\n'
        f'system_id = "smsgate"\npassword = "bench"\nwindow = {args.window}\n\n[routing]\ndefault = "sink"\n'
    )
    genv = {**os.environ, "SMSGATE_DATA_DIR": str(tmp), "SMSGATE_SANDBOX": "false"}
    py = sys.executable
    gw = subprocess.Popen(
        [py, "-m", "smsgate", "serve", "--port", str(args.port), "--config", str(cfg), "--log-level", "warning"],
        env=genv,
        stdout=(tmp / "gateway.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    # serve --processes 2 runs its delivery process as a multiprocessing child (spawn_main); matched only then, so
    # no other multiprocessing child on the machine is counted as the gateway's
    procs = "smsgate=smsgate.serve" + (" delivery=spawn_main" if genv.get("SMSGATE_PROCESSES") == "2" else "")
    try:
        base = f"http://127.0.0.1:{args.port}"
        _wait_http(base + "/healthz")
        acc = json.loads(
            subprocess.check_output(
                [py, "-m", "smsgate", "accounts", "create", "bench", "--json", "--balance", "1000000000",
                 "--default-sender", "bench", "--level", "prod"],
                env=genv, text=True,
            )
        )  # fmt: skip
        _sh(
            peers,
            "run-bench.sh",
            "custom", str(args.n), str(args.concurrency), str(args.runs),
            "--method", "POST", "--content-type", "application/json", "--body", KPN_BODY,
            "--token-url", base + "/oauth/client_credential/accesstoken?grant_type=client_credentials",
            "--client-id", acc["api_key"], "--client-secret", acc["api_secret"],
            env={**env, "SEND_URL": base + "/messaging/sms-kpn/v1/send", "BIND_SYSTEM_ID": "smsgate",
                 "PROCS": procs, "RESULTS_DIR": str(results)},
        )  # fmt: skip
    finally:
        gw.terminate()
        gw.wait(30)
    print(f"smsgate logs: {tmp}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000, help="requests per run")
    ap.add_argument("-c", "--concurrency", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--window", type=int, default=50, help="smsgate's SMPP window")
    ap.add_argument("--port", type=int, default=18380)
    ap.add_argument("--peers", type=pathlib.Path, default=PEERS)
    ap.add_argument("--qps", type=float, default=0.0,
                    help="open loop at this offered rate (msg/s) instead of closed loop; e.g. half of smsgate's "
                         "closed-loop e2e rate for the p99 target")  # fmt: skip
    ap.add_argument("--skip-kannel", action="store_true", help="only smsgate (the ratio needs a Kannel run)")
    args = ap.parse_args()
    peers = args.peers.resolve()
    if not (peers / "run-bench.sh").exists():
        raise SystemExit(f"no peer scripts in {peers} (--peers)")
    results = pathlib.Path(tempfile.mkdtemp(prefix="compare-kannel-results-"))
    env = {**os.environ, "RESULTS_DIR": str(results), "QPS": str(args.qps)}
    _sh(peers, "sink.sh", "start", env=env)
    try:
        if not args.skip_kannel:
            _sh(peers, "kannel.sh", "start", env=env)
            try:
                _sh(peers, "run-bench.sh", "kannel", str(args.n), str(args.concurrency), str(args.runs), env=env)
            finally:
                _sh(peers, "kannel.sh", "stop", env=env)
        _smsgate(args, peers, results, env)
    finally:
        _sh(peers, "sink.sh", "stop", env=env)
    rows = [("kannel", _summary(results, "kannel"))] if not args.skip_kannel else []
    rows.append(("smsgate", _summary(results, "custom")))
    load = f"open loop at {args.qps:,.0f} msg/s" if args.qps else "closed loop"
    print(
        f"\nsame machine, same sink and driver; N={args.n}, c={args.concurrency}, {load}, medians of {args.runs} runs\n"
    )
    print("| gateway | accept msg/s | e2e msg/s | p50/p99 ms | CPU µs/msg (gateway) | disturbed runs |")
    print("|---|---|---|---|---|---|")
    for name, s in rows:
        cpu: dict[str, float] = s.get("median_cpu_s") or {}  # type: ignore[assignment]
        gw_cpu = sum(v for k, v in cpu.items() if k not in ("sink", "load_tool")) / args.n * 1e6
        print(
            f"| {name} | {s['median_http_rate']:,.0f} | {s['median_e2e_rate']:,.0f} | "
            f"{s['median_http_p50_ms']}/{s['median_http_p99_ms']} | {gw_cpu:,.0f} | {s['contaminated_runs']} |"
        )
    if len(rows) == 2:
        ratio = float(rows[1][1]["median_e2e_rate"]) / float(rows[0][1]["median_e2e_rate"])  # type: ignore[arg-type]
        print(f"\nsmsgate / Kannel, end-to-end: {ratio:.3f}x")
    print(f"results: {results}")


if __name__ == "__main__":
    main()
