"""Nothing accepted is lost: SIGKILL between the 200 and the dispatch, and during a stream of sends."""

from __future__ import annotations

import pathlib
import random
import threading

import httpx

from tests.support import GatewayProcess, wait_for

SEND = "/messaging/sms-kpn/v1/send"


def _network(gw: GatewayProcess, available: bool) -> None:
    r = httpx.post(
        gw.url + "/sandbox/network",
        json={"available": available},
        headers={"Authorization": f"Bearer {gw.operator_token}"},
    )
    assert r.status_code == 200, r.text


def _statuses(c: httpx.Client, ids: list[str]) -> dict[str, str]:
    return {i: c.get(f"/v1/messages/{i}").json()["status"] for i in ids}


def test_sigkill_after_200_before_dispatch(data_dir: pathlib.Path) -> None:
    gw = GatewayProcess(data_dir).start()
    try:
        acc = gw.create_account("durable")
        auth = (acc["api_key"], acc["api_secret"])
        token = gw.token(acc)
        _network(gw, False)  # the route is down: accepted messages wait in the outbox
        c = gw.client(headers={"Authorization": f"Bearer {token}"})
        ids = [
            c.post(
                SEND, json={"sender": "KPN", "messages": [{"mobile_number": "0612345678", "content": f"m{i}"}]}
            ).json()["document_id"]
            for i in range(20)
        ]
        assert set(_statuses(gw.client(auth=auth), ids).values()) == {"accepted"}
        gw.kill()
        gw.start()  # same data dir, same port; the sandbox is up again
        c2 = gw.client(auth=auth)
        wait_for(lambda: set(_statuses(c2, ids).values()) == {"delivered"}, timeout=30)
    finally:
        gw.stop()


def test_sigkill_during_a_stream_of_sends(data_dir: pathlib.Path) -> None:
    """Kill at random moments while 4 clients send; every message that got a 200 ends delivered."""
    gw = GatewayProcess(data_dir).start()
    acc = gw.create_account("stream")
    auth = (acc["api_key"], acc["api_secret"])
    accepted: list[str] = []
    lock = threading.Lock()
    rng = random.Random(7)
    try:
        for _round in range(3):
            stop = threading.Event()

            def sender(stop: threading.Event = stop) -> None:
                with httpx.Client(base_url=gw.url, timeout=5) as c:
                    try:
                        token = c.post(
                            "/oauth/client_credential/accesstoken?grant_type=client_credentials",
                            data={"client_id": acc["api_key"], "client_secret": acc["api_secret"]},
                        ).json()["access_token"]
                    except httpx.HTTPError:
                        return
                    h = {"Authorization": f"Bearer {token}"}
                    while not stop.is_set():
                        try:
                            r = c.post(
                                SEND,
                                json={"sender": "KPN", "messages": [{"mobile_number": "0612345678", "content": "x"}]},
                                headers=h,
                            )
                        except httpx.HTTPError:
                            return  # the server died under us: that request's outcome is unknown, not promised
                        if r.status_code == 200:
                            with lock:
                                accepted.append(r.json()["document_id"])

            threads = [threading.Thread(target=sender) for _ in range(4)]
            for t in threads:
                t.start()
            stop.wait(rng.uniform(0.3, 1.2))
            gw.kill()
            stop.set()
            for t in threads:
                t.join(10)
            gw.start()
        c = gw.client(auth=auth)
        assert len(accepted) > 20
        wait_for(lambda: set(_statuses(c, accepted).values()) == {"delivered"}, timeout=60, interval=0.5)
    finally:
        gw.stop()
