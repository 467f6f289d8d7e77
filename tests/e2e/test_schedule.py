"""Scheduled sends and cancel (issue 19): ``X-Send-At`` on the vendor dialects, ``POST /v1/messages/{id}/cancel``.

A real gateway process on a real SQLite file (and PostgreSQL for the race), submitting to the SMSC simulator, so
"submitted at its time" and "never submitted" are read where they happen: the part's ``submitted_at`` and the
simulator's records.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import pathlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import support

FAST = {"SMSGATE_POLL_INTERVAL": "5"}  # a poll far longer than the 1 s promise: the dispatcher must wake for it


@pytest.fixture
def smsc() -> Iterator[support.SmscThread]:
    sim = support.SmscThread(receipt_delay_ms=50).start()
    try:
        yield sim
    finally:
        sim.stop()


def smpp_gateway(
    data_dir: pathlib.Path, sim: support.SmscThread, env: dict[str, str] | None = None
) -> support.GatewayProcess:
    config = support.smpp_config(data_dir / "smsgate.toml", sim.sim.port)
    return support.GatewayProcess(data_dir, config=config, env={**FAST, **(env or {})})


def kpn_send(gw: support.GatewayProcess, token: str, text: str, **headers: str) -> httpx.Response:
    return httpx.post(
        gw.url + "/messaging/sms-kpn/v1/send",
        json={"messages": [{"mobile_number": "0612345678", "content": text}]},
        headers={"Authorization": f"Bearer {token}", **headers},
        timeout=10,
    )


def kaarai_send(gw: support.GatewayProcess, acc: dict[str, str], text: str, **headers: str) -> httpx.Response:
    return httpx.post(
        gw.url + "/v1/send-sms",
        json={"to": "31612345678", "text": text},
        auth=(acc["api_key"], acc["api_secret"]),
        headers=headers,
        timeout=10,
    )


def get_message(gw: support.GatewayProcess, acc: dict[str, str], mid: str) -> dict[str, Any]:
    auth = (acc["api_key"], acc["api_secret"])
    r = httpx.get(f"{gw.url}/v1/messages/{mid}", auth=auth, timeout=10, verify=support.system_cas())  # polled
    assert r.status_code == 200, r.text
    return dict(r.json())


def cancel(gw: support.GatewayProcess, acc: dict[str, str], mid: str, token: str | None = None) -> httpx.Response:
    auth = {"headers": {"Authorization": f"Bearer {token}"}} if token else {"auth": (acc["api_key"], acc["api_secret"])}
    return httpx.post(f"{gw.url}/v1/messages/{mid}/cancel", timeout=10, **auth)  # type: ignore[arg-type]


def balance(gw: support.GatewayProcess, acc: dict[str, str]) -> float:
    r = httpx.get(gw.url + "/account/get-balance", params={"api_key": acc["api_key"], "api_secret": acc["api_secret"]})
    return float(r.json()["value"])


def _bound(gw: support.GatewayProcess) -> bool:
    r = httpx.get(gw.url + "/readyz", timeout=5, verify=support.system_cas())  # polled
    return bool(r.json()["connectors"]["smsc"]["state"] == "up")


def texts_seen(sim: support.SmscThread) -> list[str]:
    return list(sim.copies_by_text())


def test_a_scheduled_message_is_submitted_at_its_time_after_a_restart(
    data_dir: pathlib.Path, smsc: support.SmscThread
) -> None:
    gw = smpp_gateway(data_dir, smsc).start()
    try:
        acc = gw.create_account("sched")
        text = "scheduled " + uuid.uuid4().hex[:8]
        r = kpn_send(gw, gw.token(acc), text, **{"X-Send-At": "+3s"})
        assert r.status_code == 200, r.text
        mid = r.json()["document_id"]
        msg = get_message(gw, acc, mid)
        assert msg["status"] == "scheduled"
        send_at = msg["meta"]["send_at"]
        assert msg["created_at"] + 2.5 < send_at < msg["created_at"] + 3.5
    finally:
        gw.kill()  # SIGKILL: the job must live in the store, not in this process
    gw = smpp_gateway(data_dir, smsc).start()
    try:
        support.wait_for(lambda: _bound(gw) or None, 10)
        up = time.time()  # on a loaded machine the restart itself may outlast the 3 s: then "on time" is "at once"
        done = support.wait_for(lambda: get_message(gw, acc, mid)["status"] in ("submitted", "delivered") or None, 10)
        assert done
        part = get_message(gw, acc, mid)["parts"][0]
        assert part["submitted_at"] >= send_at
        assert part["submitted_at"] < max(send_at, up) + 1.0, (part["submitted_at"] - send_at, up - send_at)
        (copy,) = smsc.copies_by_text()[text]
        assert copy.at >= send_at  # never early at the SMSC either
    finally:
        gw.stop()


def test_cancel_before_submission_refunds_and_tells_the_webhook(
    data_dir: pathlib.Path, smsc: support.SmscThread
) -> None:
    sink = support.WebhookSink().start()
    gw = smpp_gateway(data_dir, smsc).start()
    try:
        acc = gw.create_account("cancel", receipt_url=sink.url)
        other = gw.create_account("other")
        before = balance(gw, acc)
        text = "cancel me " + uuid.uuid4().hex[:8]
        r = kaarai_send(gw, acc, text, **{"X-Send-At": "+60s"})
        assert r.status_code == 202 and r.json()["code"] == 2021, r.text  # "queued for later delivery"
        mid = r.json()["message_id"]
        assert balance(gw, acc) < before
        assert cancel(gw, other, mid).status_code == 404  # another account's id: not found, nothing changes
        assert get_message(gw, acc, mid)["status"] == "scheduled"
        r = cancel(gw, acc, mid)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "canceled"
        assert [p["status"] for p in body["parts"]] == ["canceled"]
        assert [e["type"] for e in body["events"]] == ["accepted", "canceled"]
        assert balance(gw, acc) == pytest.approx(before)
        assert cancel(gw, acc, mid).json()["status"] == "canceled"  # again: as it is, no second refund
        assert balance(gw, acc) == pytest.approx(before)
        assert support.wait_for(lambda: sink.types_by_message().get(mid) == {"message.canceled"} or None, 10)
        time.sleep(0.3)
        assert text not in texts_seen(smsc)
    finally:
        gw.stop()
        sink.stop()


def test_cancel_after_submission_is_409(data_dir: pathlib.Path, smsc: support.SmscThread) -> None:
    gw = smpp_gateway(data_dir, smsc).start()
    try:
        acc = gw.create_account("late")
        r = kpn_send(gw, gw.token(acc), "now " + uuid.uuid4().hex[:8])
        mid = r.json()["document_id"]
        assert support.wait_for(lambda: get_message(gw, acc, mid)["status"] in ("submitted", "delivered") or None)
        before = balance(gw, acc)
        r = cancel(gw, acc, mid)
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "too_late"
        assert balance(gw, acc) == pytest.approx(before)
        assert get_message(gw, acc, mid)["status"] in ("submitted", "delivered")
    finally:
        gw.stop()


def test_cancel_gives_the_quota_back(gateway: support.GatewayProcess) -> None:
    acc = gateway.create_account("quota", quota_limit=1)
    token = gateway.token(acc)
    first = kpn_send(gateway, token, "later", **{"X-Send-At": "+600s"})
    assert first.status_code == 200 and first.headers["quota-used"] == "1"
    assert kpn_send(gateway, token, "refused").status_code == 429
    assert cancel(gateway, acc, first.json()["document_id"], token).json()["status"] == "canceled"
    again = kpn_send(gateway, token, "now it fits")
    assert again.status_code == 200 and again.headers["quota-used"] == "1", again.text


def test_bad_send_at_is_the_dialects_own_400(gateway: support.GatewayProcess, account: dict[str, str]) -> None:
    r = kpn_send(gateway, gateway.token(account), "x", **{"X-Send-At": "tomorrow"})
    assert r.status_code == 400 and "send_at" in r.json()["errorResponse"]["info"]
    r = kaarai_send(gateway, account, "x", **{"X-Send-At": "2030-01-01T10:00:00"})  # no offset
    assert r.status_code == 400 and r.json()["code"] == 4000
    r = httpx.post(
        gateway.url + "/sms/json",
        data={"api_key": account["api_key"], "api_secret": account["api_secret"], "from": "x", "to": "31612345678",
              "text": "x"},
        headers={"X-Send-At": "+99999999s"},
    )  # fmt: skip
    assert r.json()["messages"][0]["status"] == "3"


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_cancel_racing_the_dispatcher_ends_exactly_one_way(
    data_dir: pathlib.Path, smsc: support.SmscThread, backend: str
) -> None:
    """Messages come due while their cancels arrive: each ends canceled and never at the SMSC, or submitted once
    and its cancel refused (409); never both, never neither."""
    with support.postgres_database() if backend == "postgresql" else contextlib.nullcontext(None) as db:
        env = {"SMSGATE_DATABASE_URL": db} if db else {}
        gw = smpp_gateway(data_dir, smsc, env).start()
        try:
            acc = gw.create_account("race")
            token = gw.token(acc)
            count = 40
            texts = [f"race {i} {uuid.uuid4().hex[:6]}" for i in range(count)]
            due = time.time() + 6.0
            at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(due)) + f".{int(due % 1 * 1e6):06d}+00:00"
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                sent = pool.map(lambda t: kpn_send(gw, token, t, **{"X-Send-At": at}).json()["document_id"], texts)
                ids = list(sent)
            assert time.time() < due - 0.5, "sending took too long for the race to be run"

            def cancel_near_due(i: int) -> int:  # spread over due ± 0.4 s, so some land just as it is claimed
                time.sleep(max(0.0, due - 0.4 + i * 0.8 / count - time.time()))
                return cancel(gw, acc, ids[i], token).status_code

            with concurrent.futures.ThreadPoolExecutor(count) as pool:
                codes = list(pool.map(cancel_near_due, range(count)))
            assert set(codes) <= {200, 409}
            time.sleep(1.0)
            seen = smsc.copies_by_text()
            for mid, text, code in zip(ids, texts, codes, strict=True):
                status = get_message(gw, acc, mid)["status"]
                if code == 200:
                    assert status == "canceled" and text not in seen, (mid, status)
                else:
                    assert status in ("submitted", "delivered") and len(seen.get(text, [])) == 1, (mid, status)
        finally:
            gw.stop()


def test_openapi_documents_the_headers_cancel_and_statuses(gateway: support.GatewayProcess) -> None:
    doc = httpx.get(gateway.url + "/openapi.json", timeout=10).json()
    sends = [("/messaging/sms-kpn/v1/send", "post"), ("/communication/nexmo/sms/send", "post"),
             ("/sms/json", "post"), ("/sms/xml", "post"), ("/v1/send-sms", "post")]  # fmt: skip
    for path, method in sends:
        headers = {p["name"] for p in doc["paths"][path][method].get("parameters", []) if p["in"] == "header"}
        assert {"X-Send-At", "X-Validity-Seconds", "X-Priority"} <= headers, (path, headers)
    cancel = doc["paths"]["/v1/messages/{message_id}/cancel"]["post"]
    assert {"200", "404", "409"} <= set(cancel["responses"])
    status = doc["components"]["schemas"]["MessageOut"]["properties"]["status"]
    assert {"scheduled", "canceled", "expired"} <= set(status["enum"])
