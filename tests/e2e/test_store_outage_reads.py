"""Reads on a cache miss while the database is cut answer each dialect's "try again later", never a 500.

A token's account, a key's secret and a message are read from the database when the per-process caches have
nothing fresh; with PostgreSQL behind a proxy the test cuts, every one of those reads fails with a refused
connection. The gateway must answer as it does for a refused write (KPN 503 with Retry-After, Kaarai 5030, our API
503), and work again by itself once the proxy is back.
"""

from __future__ import annotations

import pathlib

from tests.support import GatewayProcess, TcpProxy, create_account, postgres_database, wait_for

KPN_SEND = "/messaging/sms-kpn/v1/send"
BODY = {"sender": "smsgate", "messages": [{"mobile_number": "+31612345678", "content": "hi"}]}


def test_reads_during_a_database_cut_answer_try_again(tmp_path: pathlib.Path) -> None:
    with postgres_database() as db:
        host, port = "127.0.0.1", int(db.rsplit(":", 1)[1].split("/", 1)[0])
        proxy = TcpProxy((host, port)).start()
        proxied = db.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}")
        # caches last 50 ms here, so each request below reads the database
        env = {"SMSGATE_DATABASE_URL": proxied, "SMSGATE_CACHE_SECONDS": "0.05", "SMSGATE_SANDBOX": "false"}
        gw = GatewayProcess(tmp_path, env=env).start()
        try:
            acc = create_account(db, "cut")
            token = gw.token(acc)
            bearer = {"Authorization": f"Bearer {token}"}
            with gw.client() as c:
                sent = c.post(KPN_SEND, json=BODY, headers=bearer)
                assert sent.status_code == 200, sent.text
                doc = sent.json()["document_id"]
                proxy.cut()
                try:
                    kpn = c.post(KPN_SEND, json=BODY, headers=bearer)
                    assert kpn.status_code == 503 and kpn.headers.get("retry-after"), kpn.text
                    assert kpn.json()["errorResponse"]["code"] == "503"
                    basic = (acc["api_key"], acc["api_secret"])
                    kaarai = c.post("/v1/send-sms", json={"to": "31612345678", "text": "hi"}, auth=basic)
                    assert kaarai.status_code == 503 and kaarai.json()["code"] == 5030, kaarai.text
                    read = c.get(f"/v1/messages/{doc}", auth=basic)
                    assert read.status_code == 503, read.text
                finally:
                    proxy.start()
                again = wait_for(lambda: (r := c.post(KPN_SEND, json=BODY, headers=bearer)).status_code == 200 and r)
                assert again.json()["document_id"] != doc
        finally:
            gw.stop()
            proxy.cut()
        log = gw.log.read_text()
        assert "unexpected error" not in log and "Exception in ASGI application" not in log
