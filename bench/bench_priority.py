"""Priority lanes under a bulk backlog: how long a ``high`` (and a ``normal``) message takes to reach the SMSC while
thousands of ``bulk`` parts wait for an SMPP connector capped at ``--tps``.

Starts the SMSC simulator (in this process) and a gateway (SQLite) wired to it, queues ``--bulk`` Kaarai messages of
``--parts`` parts from an account whose default lane is ``bulk``, then sends ``--probes`` KPN messages per lane, one
every ``--interval`` seconds, and prints, per lane, the latency from the request to the submit_sm at the simulator
(p50 and max) and the bulk parts still queued. Bounded: a probe not seen within ``--patience`` s counts as lost.

    .venv/bin/python bench/bench_priority.py --bulk 2400 --parts 10 --tps 200 --probes 8
"""

from __future__ import annotations

import argparse
import concurrent.futures
import pathlib
import statistics
import sys
import tempfile
import time
import uuid

import httpx

sys.path.insert(0, str(pathlib.Path(__file__).parents[1]))
from tests import support  # the test harness: simulator thread, gateway process, accounts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bulk", type=int, default=2400, help="bulk messages queued first")
    ap.add_argument("--parts", type=int, default=10, help="parts per bulk message (GSM-7)")
    ap.add_argument("--tps", type=float, default=200.0, help="the connector's max_tps")
    ap.add_argument("--probes", type=int, default=8, help="messages per probed lane")
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between probes")
    ap.add_argument("--patience", type=float, default=5.0, help="seconds a probe may take before it counts as lost")
    args = ap.parse_args()
    sim = support.SmscThread(record_cap=args.bulk * args.parts + 1000).start()
    with tempfile.TemporaryDirectory() as tmp:
        data = pathlib.Path(tmp)
        config = support.smpp_config(data / "smsgate.toml", sim.sim.port, max_tps=args.tps)
        try:
            with support.gateway_process(data, config=config) as gw:
                run(gw, sim, args)
        finally:
            sim.stop()


def run(gw: support.GatewayProcess, sim: support.SmscThread, args: argparse.Namespace) -> None:
    bulk = gw.create_account("bulk", default_priority="bulk", balance=10**8 * 10**7)
    probe = gw.create_account("probe")
    text = ("bulk " + "x" * 153 * args.parts)[: 153 * args.parts]

    def send_bulk(n: int) -> None:
        with httpx.Client(base_url=gw.url, auth=(bulk["api_key"], bulk["api_secret"]), timeout=30) as c:
            for _ in range(n):
                c.post("/v1/send-sms", json={"to": "31612345678", "text": text}).raise_for_status()

    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        list(pool.map(send_bulk, [args.bulk // 6] * 6))
    print(f"queued {args.bulk // 6 * 6 * args.parts} bulk parts in {time.time() - started:.1f} s")
    token = gw.token(probe)
    sent: list[tuple[str, str, float]] = []
    for i in range(args.probes):
        for lane in ("high", "normal"):
            code = f"probe {lane} {uuid.uuid4().hex[:8]}"
            at = time.time()
            httpx.post(
                gw.url + "/messaging/sms-kpn/v1/send",
                json={"messages": [{"mobile_number": "0612345678", "content": code}]},
                headers={"Authorization": f"Bearer {token}", "X-Priority": lane},
                timeout=10,
            ).raise_for_status()
            sent.append((lane, code, at))
        if i + 1 < args.probes:
            time.sleep(args.interval)
    time.sleep(args.patience)
    arrived = {r.short_message.decode("latin-1"): r.at for r in sim.records() if b"probe" in r.short_message}
    queued = httpx.get(gw.url + "/v1/connectors", headers={"authorization": "Bearer " + gw.operator_token}).json()
    left = sum(c["queued"] for c in queued["connectors"]) * args.parts
    print(f"max_tps {args.tps:g}; bulk parts still queued at the end: {left}")
    for lane in ("high", "normal"):
        took = [arrived[code] - at for name, code, at in sent if name == lane and code in arrived]
        lost = sum(1 for name, code, _ in sent if name == lane and code not in arrived)
        if took:
            print(f"{lane:>6}: p50 {statistics.median(took) * 1000:6.0f} ms   max {max(took) * 1000:6.0f} ms   "
                  f"({len(took)} seen, {lost} not within {args.patience:g} s)")  # fmt: skip
        else:
            print(f"{lane:>6}: none of {lost} seen within {args.patience:g} s")


if __name__ == "__main__":
    main()
