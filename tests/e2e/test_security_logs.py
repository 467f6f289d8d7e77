"""Issue #14 item 10: webhook URLs (with their ``?token=``) and message text stay out of the logs.

A real gateway on SQLite logging at INFO. Two accounts deliver Vonage-format webhooks by GET (the text travels in
the query string) to URLs holding a secret token: a delivery receipt and an inbound message each. The log shows
each delivery's id, receiver and status, and neither a token nor a text.
"""

from __future__ import annotations

import secrets

import httpx

from tests.e2e.test_webhooks import Receiver
from tests.support import GatewayProcess, add_numbers, wait_for


def test_webhook_urls_and_texts_stay_out_of_the_info_log(tmp_path: object) -> None:
    receiver = Receiver().start()
    gw = GatewayProcess(tmp_path, log_level="info").start()  # type: ignore[arg-type]
    try:
        secrets_seen: list[str] = []
        auths = []
        for name, number in (("alice", "3197020000001"), ("bob", "3197020000002")):
            token, text = "tok" + secrets.token_hex(8), "very private " + secrets.token_hex(4)
            secrets_seen += [token, text]
            acc = gw.create_account(name, webhook_method="GET", inbound_url=f"{receiver.url}?token={token}")
            add_numbers(gw.database_url, {number: acc["account_id"]})
            auth = (acc["api_key"], acc["api_secret"])
            auths.append(auth)
            r = httpx.post(
                gw.url + "/sms/json",
                data={"from": number, "to": "31612345678", "text": text, "callback": f"{receiver.url}?token={token}"},
                auth=auth,
            )
            assert r.json()["messages"][0]["status"] == "0", r.text
            r = httpx.post(gw.url + "/sandbox/handsets/31612345678/reply", json={"to": number, "text": text}, auth=auth)
            assert r.status_code == 202, r.text
        wait_for(lambda: len(receiver.ok) >= 4, timeout=15)
        assert any(token in r["path"] for r in receiver.ok for token in secrets_seen)  # they were there to leak

        def delivered() -> list[str]:
            rows = [
                d
                for auth in auths
                for d in httpx.get(gw.url + "/v1/webhooks/deliveries", auth=auth).json()["deliveries"]
            ]
            return [d["id"] for d in rows] if len(rows) >= 4 and all(d["status"] == "delivered" for d in rows) else []

        ids = wait_for(delivered, timeout=10)  # recorded after the attempt was logged
        log = gw.log.read_text()
        leaked = [s for s in secrets_seen if s in log]
        assert not leaked, f"{leaked} in the log:\n{log[-3000:]}"
        for i in ids:  # one line per delivery: its id, the receiver (host:port) and the answer
            assert f"webhook {i} to 127.0.0.1:{receiver.port}: 200" in log, log[-3000:]
    finally:
        gw.stop()
        receiver.stop()
