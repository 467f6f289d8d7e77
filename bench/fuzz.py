"""The long schemathesis run: every operation of the gateway's own OpenAPI document, many more cases than CI.

Starts its own gateway (SQLite in a temp dir, sandbox network, loopback), makes an account, and fuzzes in rounds
of at most ``--batch`` cases per operation and generation mode, each round with a new seed, until every operation
had ``--examples`` cases per mode or ``--time-limit`` seconds have passed (checked between batches). Prints a
summary and exits 1 on any failure: a 5xx, an undocumented status or content type, a body that does not match
its schema, or a traceback in the gateway's log. The checks and the way cases are sent are those of the CI test
(tests/e2e/test_fuzz.py, through tests/fuzzing.py).

    .venv/bin/python bench/fuzz.py --examples 2000 --time-limit 1800
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests import fuzzing  # noqa: E402
from tests.support import GatewayProcess  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--examples", type=int, default=2000, help="cases per operation and mode (positive, negative)")
    ap.add_argument("--time-limit", type=float, default=1800.0, help="seconds; checked between batches")
    ap.add_argument("--batch", type=int, default=100, help="cases per operation and mode in one round")
    ap.add_argument("--seed", type=int, default=None, help="first round's seed (default: random, printed)")
    ap.add_argument("--operation", action="append", help="only this operation, e.g. 'POST /sms/json' (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the gateway's data dir and log")
    args = ap.parse_args()
    if args.examples < 1 or args.batch < 1 or args.time_limit <= 0:
        ap.error("--examples, --batch and --time-limit must be positive")

    first_seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    deadline = time.monotonic() + args.time_limit
    data_dir = pathlib.Path(tempfile.mkdtemp(prefix="smsgate-fuzz-"))
    gw = GatewayProcess(data_dir, env=fuzzing.GATEWAY_ENV).start()
    report = fuzzing.Report()
    rounds = -(-args.examples // args.batch)
    try:
        creds = fuzzing.prepare(gw)
        schema = fuzzing.load_schema(gw.url)
        print(f"fuzzing {len(fuzzing.operations(schema))} operations at {gw.url}, seed {first_seed}", flush=True)
        for n in range(rounds):
            if time.monotonic() > deadline:
                print("time limit reached", flush=True)
                break
            size = min(args.batch, args.examples - n * args.batch)
            print(f"round {n + 1}/{rounds}: {size} cases per operation and mode, seed {first_seed + n}", flush=True)
            fuzzing.fuzz(
                schema,
                creds,
                max_examples=size,
                derandomize=False,
                rng_seed=first_seed + n,
                deadline=deadline,
                only=args.operation,
                report=report,
            )
            print(f"  {sum(report.cases.values())} cases, {len(report.findings)} failure(s) so far", flush=True)
    finally:
        gw.stop()
    log = gw.log.read_text()
    print(report.summary())
    failed = bool(report.findings)
    if "Traceback" in log:
        print("the gateway logged a traceback:\n" + log[-5000:])
        failed = True
    if args.keep or failed:
        print(f"gateway data and log kept in {data_dir}")
    else:
        shutil.rmtree(data_dir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
