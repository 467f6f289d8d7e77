"""How soon a waiting ``GET /sandbox/handsets/{msisdn}/messages/latest?wait=`` returns once the message is on the
handset (issue #22): the gateway stamps each part when the sandbox network takes it (``received_at``, written in the
transaction whose commit wakes the waiter); the client notes when the answer is in. Same machine, same clock.

Each try: a long poll (wait 10 s) is already waiting, then one message is sent (Kaarai) to the handset. Prints the
median, p90 and max of (answer in - received_at), and of (answer in - send started), over N tries.

    .venv/bin/python bench/bench_longpoll.py --tries 50
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import time

import httpx

from smsgate.testing.gateway import Gateway


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tries", type=int, default=50)
    ap.add_argument("--env", action="append", default=[], help="SMSGATE_NAME=value for the gateway")
    args = ap.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    gw = Gateway(env=env).start()
    try:
        acc = gw.create_account("bench")
        auth = (acc.api_key, acc.api_secret)
        after_arrival: list[float] = []
        after_send: list[float] = []
        with (
            httpx.Client(base_url=gw.url, auth=auth, timeout=30) as poll,
            httpx.Client(base_url=gw.url, auth=auth, timeout=30) as send,
            concurrent.futures.ThreadPoolExecutor(1) as pool,
        ):

            def wait_latest(since: str) -> tuple[httpx.Response, float]:
                latest = "/sandbox/handsets/31612345678/messages/latest"
                return poll.get(latest, params={"wait": 10, "since": since}), time.time()

            since = f"{time.time():.6f}"
            deadline = time.monotonic() + 300
            for i in range(args.tries):
                if time.monotonic() > deadline:
                    break
                waiting = pool.submit(wait_latest, since)
                time.sleep(0.05)  # the poll is waiting before the message exists
                sent_at = time.time()
                send.post("/v1/send-sms", json={"to": "31612345678", "text": f"code {1000 + i}"}).raise_for_status()
                r, answered = waiting.result(timeout=20)
                r.raise_for_status()
                body = r.json()
                after_arrival.append((answered - body["received_at"]) * 1000)
                after_send.append((answered - sent_at) * 1000)
                since = body["id"]
        acc.close()
    finally:
        gw.stop()
        gw.remove_data()
    for name, xs in (("message on the handset -> answer in", after_arrival), ("send -> answer in", after_send)):
        xs.sort()
        p90 = xs[int(len(xs) * 0.9) - 1]
        print(
            f"{name:38s} n={len(xs)}  median {statistics.median(xs):6.1f} ms  p90 {p90:6.1f} ms  max {xs[-1]:6.1f} ms"
        )


if __name__ == "__main__":
    main()
