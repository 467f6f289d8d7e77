"""``serve --processes 2`` on SQLite: an accept and a delivery process sharing the file, run as one command.

Real ``smsgate serve`` subprocesses with the sandbox network; what crosses between the processes is checked where
a stale copy would show: the sandbox network switched off and on through the accept process's API, an account's
network behaviour (held by the delivery process's sandbox connector), long polls woken by the delivery process's
commits. Then the supervision: SIGKILL of the command leaves no delivery process behind, the delivery process is
restarted when it dies, SIGTERM stops both.
"""

from __future__ import annotations

import os
import pathlib
import signal
import time

import httpx
import pytest

from tests.e2e.test_sandbox_control import Party
from tests.support import GatewayProcess, handset, system_cas, wait_for

SEND = "/messaging/sms-kpn/v1/send"
SPLIT = {"SMSGATE_PROCESSES": "2"}


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def _delivery_pid(gw: GatewayProcess) -> int:
    """The delivery process (the child running ``spawn_main``, not multiprocessing's resource tracker)."""
    assert gw.proc is not None
    for pid in _children(gw.proc.pid):
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            if b"spawn_main" in fh.read():
                return pid
    raise AssertionError("no delivery process")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _send(c: httpx.Client, text: str) -> str:
    r = c.post(SEND, json={"sender": "KPN", "messages": [{"mobile_number": "0612345678", "content": text}]})
    assert r.status_code == 200, r.text
    return str(r.json()["document_id"])


def _status(c: httpx.Client, message_id: str) -> str:
    return str(c.get(f"/v1/messages/{message_id}").json()["status"])


def _operator(gw: GatewayProcess, method: str, path: str, **kw: object) -> httpx.Response:
    headers = {"Authorization": f"Bearer {gw.operator_token}"}
    r = httpx.request(method, gw.url + path, headers=headers, verify=system_cas(), **kw)  # type: ignore[arg-type]
    assert r.status_code == 200, r.text
    return r


def _client(gw: GatewayProcess) -> httpx.Client:
    acc = gw.create_account("split")
    return gw.client(headers={"Authorization": f"Bearer {gw.token(acc)}"})


def test_split_node_sends_and_keeps_the_processes_in_step(data_dir: pathlib.Path) -> None:
    gw = GatewayProcess(data_dir, env=SPLIT).start()
    try:
        delivery = _delivery_pid(gw)
        c = _client(gw)
        first = _send(c, "one")
        wait_for(lambda: _status(c, first) == "delivered", timeout=10)

        # a long poll in the accept process ends when the delivery process's submit commits
        r = c.get("/sandbox/handsets/31612345678/messages/latest", params={"wait": 0})
        after = r.json()["id"]
        t0 = time.monotonic()
        waiting = c.build_request(
            "GET", "/sandbox/handsets/31612345678/messages/latest", params={"wait": 10, "since": after}
        )
        second = None
        with httpx.Client(base_url=gw.url, timeout=15) as other:
            import threading

            got: dict[str, httpx.Response] = {}
            t = threading.Thread(target=lambda: got.setdefault("r", other.send(waiting)))
            t.start()
            time.sleep(0.3)
            second = _send(c, "two")
            t.join(15)
        assert got["r"].status_code == 200, got["r"].text
        assert got["r"].json()["id"] == second
        assert time.monotonic() - t0 < 5

        # the operator switches the sandbox network off in the accept process: the delivery process holds back
        _operator(gw, "POST", "/sandbox/network", json={"available": False})
        held = _send(c, "held")
        time.sleep(1.0)
        assert _status(c, held) == "accepted"
        _operator(gw, "POST", "/sandbox/network", json={"available": True})
        wait_for(lambda: _status(c, held) == "delivered", timeout=10)

        # a pause recorded by the accept process reaches the delivery process's connector, and the reports back
        _operator(gw, "POST", "/v1/connectors/sandbox/pause", json={"reason": "test"})
        paused = _send(c, "paused")
        time.sleep(1.0)
        assert _status(c, paused) == "accepted"
        _operator(gw, "POST", "/v1/connectors/sandbox/resume")
        wait_for(lambda: _status(c, paused) == "delivered", timeout=10)
        view = _operator(gw, "GET", "/v1/connectors").json()["connectors"][0]
        wait_for(lambda: _operator(gw, "GET", "/v1/connectors").json()["connectors"][0]["parts"], timeout=5)
        assert view["state"] == "up"

        # the account's network behaviour lives in the delivery process's sandbox connector: no receipts now
        r = c.put("/sandbox/behaviour", json={"receipts": {"missing": 1.0}})
        assert r.status_code == 200, r.text
        silent = _send(c, "no receipt")
        wait_for(lambda: _status(c, silent) == "submitted", timeout=10)
        time.sleep(1.0)
        assert _status(c, silent) == "submitted"
        assert _delivery_pid(gw) == delivery  # nothing was restarted on the way
    finally:
        gw.stop()


def test_a_sandbox_reset_drops_answers_waiting_in_the_delivery_process(data_dir: pathlib.Path) -> None:
    """Scripted answers wait for their delay where the message was submitted (the delivery process); a reset
    made through the accept process's API drops them there too."""
    gw = GatewayProcess(data_dir, env=SPLIT).start()
    try:
        a, phone = Party(gw, number=True), handset()
        rules = [{"match": "^now$", "reply": "right back"}, {"match": "^later$", "reply": "late", "delay_ms": 1500}]
        assert a.client.put(f"/sandbox/handsets/{phone}/script", json={"rules": rules}).status_code == 200
        a.send(phone, "now")
        wait_for(lambda: [m for m in a.inbound() if m["text"] == "right back"], timeout=10)
        a.delivered(a.send(phone, "later"))  # its answer now waits 1.5 s in the delivery process
        assert a.client.post("/sandbox/reset").status_code == 200
        time.sleep(2.5)
        assert a.inbound() == []  # the reset deleted the conversation, and no late answer came after it
    finally:
        gw.stop()


def test_sigkill_of_the_command_takes_the_delivery_process_along(data_dir: pathlib.Path) -> None:
    gw = GatewayProcess(data_dir, env=SPLIT).start()
    c = _client(gw)
    _operator(gw, "POST", "/sandbox/network", json={"available": False})
    ids = [_send(c, f"m{i}") for i in range(5)]
    delivery = _delivery_pid(gw)
    gw.kill()
    wait_for(lambda: not _alive(delivery), timeout=5)

    again = GatewayProcess(data_dir, env=SPLIT)
    again.port, again.url = gw.port, gw.url
    again.operator_token = gw.operator_token
    again.env = gw.env
    again.start()
    try:
        # the network is on again after a start; every message accepted before the kill is delivered
        c2 = again.client(headers=c.headers)
        wait_for(lambda: all(_status(c2, i) == "delivered" for i in ids), timeout=20)
    finally:
        again.stop()


@pytest.mark.slow
def test_a_dead_delivery_process_is_replaced_and_sigterm_stops_both(data_dir: pathlib.Path) -> None:
    gw = GatewayProcess(data_dir, env=SPLIT).start()
    try:
        c = _client(gw)
        time.sleep(10.5)  # past split.CRASH_LOOP: a death now is not a crash loop
        first = _delivery_pid(gw)
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: _children_delivery(gw) not in (None, first), timeout=30)
        sent = _send(c, "after the restart")
        wait_for(lambda: _status(c, sent) == "delivered", timeout=20)
        second = _delivery_pid(gw)
    finally:
        gw.stop()
    assert gw.proc is not None and gw.proc.returncode == 0
    assert not _alive(second)


def _children_delivery(gw: GatewayProcess) -> int | None:
    try:
        return _delivery_pid(gw)
    except (AssertionError, OSError):
        return None
