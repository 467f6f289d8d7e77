"""``GET /v1/messages/export`` on a real server: CSV of the caller's messages only, in a time window, text on
request, streamed (chunked, not one buffered body), on SQLite and on PostgreSQL."""

from __future__ import annotations

import csv
import io
import pathlib
import time

from tests import support
from tests.e2e.test_suppressions import basic
from tests.support import GatewayProcess, handset, wait_for


def test_export_streams_only_the_accounts_messages(gateway: GatewayProcess) -> None:
    check_export(gateway)


def test_export_on_postgresql(tmp_path: pathlib.Path) -> None:
    with support.backend_env("postgresql") as db, support.gateway_process(tmp_path / "pg", env=db) as gw:
        check_export(gw)


def check_export(gateway: GatewayProcess) -> None:
    a, b = gateway.create_account("a"), gateway.create_account("b")
    with basic(gateway, a) as ca, basic(gateway, b) as cb:
        start = time.time()
        sent = [
            ca.post("/v1/send-sms", json={"to": handset(), "text": f"a says {i}"}).json()["message_id"]
            for i in range(3)
        ]
        theirs = cb.post("/v1/send-sms", json={"to": handset(), "text": "b secret"}).json()["message_id"]
        # the export's subject is the rows, not the pace: a loaded run may take a while to deliver
        wait_for(lambda: all(ca.get(f"/v1/messages/{m}").json()["status"] == "delivered" for m in sent), timeout=30)
        with ca.stream("GET", "/v1/messages/export", params={"from": str(start)}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
            assert r.headers.get("transfer-encoding") == "chunked"  # streamed, no content-length
            body = r.read().decode()
        rows = list(csv.DictReader(io.StringIO(body)))
        assert [x["id"] for x in rows] == sent and theirs not in body
        assert rows[0]["direction"] == "outbound" and rows[0]["status"] == "delivered" and "text" not in rows[0]
        assert rows[0]["price"] == ca.get(f"/v1/messages/{sent[0]}").json()["price"] and rows[0]["parts"] == "1"
        assert "a says" not in body  # no content unless asked
        texts = list(csv.DictReader(io.StringIO(ca.get("/v1/messages/export", params={"text": "true"}).text)))
        assert [x["text"] for x in texts] == ["a says 0", "a says 1", "a says 2"]
        none = ca.get("/v1/messages/export", params={"from": "2020-01-01", "to": "2020-02-01"})
        assert none.text.strip() == "id,direction,from,to,status,parts,price,created_at,updated_at"
        bad = ca.get("/v1/messages/export", params={"from": "yesterday"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"
        assert gateway.client().get("/v1/messages/export").status_code == 401
