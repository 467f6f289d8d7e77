"""The web console in headless Chromium: sign-in, the live list, detail, handsets, webhook replay, account.

The browser part is ``console_check.mjs`` (playwright-core driving Debian's chromium); this module starts the
gateway and a real webhook receiver on loopback, runs the script and reports its output. Screenshots go to
``artifacts/console/``.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import select
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.support import GatewayProcess, run_cli, wait_for

HERE = pathlib.Path(__file__).parent
ROOT = HERE.parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# an import, a src/href, a CSS url() or a fetch() of an absolute URL
_REMOTE = re.compile(r"""(?:\bfrom|\bimport|src=|href=|url\(|fetch\()\s*['"]?(?:https?:)?//""")


class Receiver:
    """A webhook receiver on 127.0.0.1: logs every request; ``/receipts`` answers 500 until healed."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.failing = True
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def _reply(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/_log":
                    with receiver.lock:
                        body = json.dumps({"requests": receiver.requests}).encode()
                    self._reply(200, body)
                else:
                    self._record(b"")

            def do_POST(self) -> None:
                size = int(self.headers.get("content-length") or 0)
                data = self.rfile.read(size) if size else b""
                if self.path == "/_heal":
                    receiver.failing = False
                    self._reply(204)
                    return
                self._record(data)

            def _record(self, data: bytes) -> None:
                status = 500 if receiver.failing and self.path.startswith("/receipts") else 200
                with receiver.lock:
                    receiver.requests.append(
                        {
                            "path": self.path,
                            "body": data.decode("utf-8", "replace"),
                            "status": status,
                            "at": time.time(),
                        }
                    )
                self._reply(status, b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    # a slow first automatic retry, so the test can tell a console replay from the engine's own retry
    gw = GatewayProcess(tmp_path_factory.mktemp("gw"), env={"SMSGATE_WEBHOOK_RETRY_BASE": "60"}).start()
    try:
        yield gw
    finally:
        gw.stop()


def _browser_missing() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not pathlib.Path(CHROMIUM).exists():
        return f"chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    if not (HERE / "node_modules" / "playwright-core").is_dir():
        return "playwright-core is not installed (run: npm ci --prefix tests/e2e/console)"
    return None


def test_console_in_chromium(gateway: GatewayProcess) -> None:
    """Sign in; a KPN message appears live and turns delivered; a handset reply reaches the inbound webhook;
    a failed receipt webhook is replayed from the console; account page, secret rotation, phone layout, operator."""
    missing = _browser_missing()
    if missing:
        pytest.skip(missing)
    artifacts = ROOT / "artifacts" / "console"
    with Receiver() as receiver:
        acc = gateway.create_account(
            "console", receipt_url=receiver.url + "/receipts", inbound_url=receiver.url + "/inbound"
        )
        # the browser sends as ConsoleQA and the handset replies to it: a name the account owns
        run_cli("senders", "reserve", "ConsoleQA", acc["api_key"], env=gateway.env)
        env = {
            **os.environ,
            "CONSOLE_URL": gateway.url,
            "API_KEY": acc["api_key"],
            "API_SECRET": acc["api_secret"],
            "OPERATOR_TOKEN": gateway.operator_token,
            "RECEIVER_URL": receiver.url,
            "ARTIFACTS": str(artifacts),
            "CHROMIUM": CHROMIUM,
        }
        run = subprocess.run(
            ["node", str(HERE / "console_check.mjs")], env=env, cwd=HERE, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, f"browser check failed:\n{run.stdout}\n{run.stderr}"
        # and from this side too: the handset's reply reached the account's inbound webhook as our JSON event
        inbound = [r for r in receiver.requests if r["path"] == "/inbound"]
        assert inbound and json.loads(inbound[0]["body"])["type"] == "message.received"
        replayed = [r for r in receiver.requests if r["path"] == "/receipts" and r["status"] == 200]
        assert replayed, "no successful receipt webhook after the replay"
    for name in ("desktop-messages", "desktop-detail", "desktop-handset", "phone-messages", "phone-handset"):
        assert (artifacts / f"{name}.png").stat().st_size > 1000


def test_console_assets_are_local(gateway: GatewayProcess) -> None:
    """The shell and its modules come from the gateway, with a CSP that forbids any other origin."""
    r = httpx.get(gateway.url + "/console")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert "http" not in r.text.replace("http-equiv", "")
    for name in (
        "app.js",
        "api.js",
        "live.js",
        "messages.js",
        "batches.js",
        "handsets.js",
        "webhooks.js",
        "account.js",
        "compose.js",
        "style.css",
    ):
        asset = httpx.get(f"{gateway.url}/console/static/{name}")
        assert asset.status_code == 200, name
        assert not _REMOTE.search(asset.text), f"{name} loads something from another origin"
    assert httpx.get(gateway.url + "/console/static/nope.js").status_code == 404


def test_account_api_and_stream(gateway: GatewayProcess) -> None:
    """``/v1/account`` and ``/stats`` count what was sent; the stream resumes from an event id; bad input is 4xx."""
    acc = gateway.create_account("api", quota_limit=5)
    auth = (acc["api_key"], acc["api_secret"])
    with gateway.client(auth=auth) as c:
        token = gateway.token(acc)
        sent = httpx.post(
            gateway.url + "/messaging/sms-kpn/v1/send",
            headers={"authorization": f"Bearer {token}"},
            json={"messages": [{"mobile_number": "+31612340009", "content": "stats"}]},
        )
        assert sent.status_code == 200, sent.text
        me = c.get("/v1/account").json()
        assert me["api_key"] == acc["api_key"] and me["quota"]["limit"] == 5 and me["quota"]["used"] == 1
        assert me["balance"] == "999.93000000"
        stats = c.get("/v1/account/stats", params={"minutes": 5}).json()
        assert len(stats["per_minute"]) == 5 and stats["totals"]["outbound"] == 1
        assert c.get("/v1/account/stats", params={"minutes": 0}).status_code == 400
        assert c.get("/console/api/messages", params={"before": "nonsense"}).status_code == 400
        msg_id = sent.json()["document_id"]
        wait_for(lambda: c.get(f"/console/api/messages/{msg_id}").json()["status"] == "delivered")
        # an event id from before the send: the stream replays this message's changes, then ends at the client
        with c.stream("GET", "/console/api/stream", params={"after": 0}, timeout=5) as s:
            seen = ""
            for chunk in s.iter_text():
                seen += chunk
                if msg_id in seen and "delivered" in seen:
                    break
        assert "event: messages" in seen
    assert httpx.get(gateway.url + "/console/api/messages").status_code == 401
    op = httpx.get(gateway.url + "/console/api/whoami", headers={"authorization": f"Bearer {gateway.operator_token}"})
    assert op.json()["operator"] is True


def test_live_list_survives_a_restart(gateway: GatewayProcess) -> None:
    """SIGKILL and restart the gateway under an open console; a message sent afterwards still shows up live."""
    missing = _browser_missing()
    if missing:
        pytest.skip(missing)
    acc = gateway.create_account("restart")
    env = {**os.environ, "CONSOLE_URL": gateway.url, "API_KEY": acc["api_key"], "API_SECRET": acc["api_secret"]}
    proc = subprocess.Popen(
        ["node", str(HERE / "console_restart.mjs")],
        env=env,
        cwd=HERE,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        assert line.strip() == "READY", (
            f"console did not get ready: {line!r} {proc.stderr.read() if proc.poll() else ''}"
        )
        gateway.kill()
        gateway.start()
        sent = httpx.post(
            gateway.url + "/messaging/sms-kpn/v1/send",
            headers={"authorization": f"Bearer {gateway.token(acc)}"},
            json={"messages": [{"mobile_number": "+31612349999", "content": "after the restart"}]},
        )
        assert sent.status_code == 200, sent.text
        proc.stdin.write(sent.json()["document_id"] + "\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0, f"restart check failed:\n{line}{out}\n{err}"


def test_console_cancels_a_scheduled_message_and_shows_currency_decimals(gateway: GatewayProcess) -> None:
    """Issue 19: a scheduled message (X-Send-At) is canceled from its detail page with the refund shown; a sent one
    has no Cancel button; prices and the balance have EUR's 2 decimals (``console_schedule.mjs``)."""
    missing = _browser_missing()
    if missing:
        pytest.skip(missing)
    acc = gateway.create_account("schedule")
    token = gateway.token(acc)

    def send(number: str, **headers: str) -> str:
        r = httpx.post(
            gateway.url + "/messaging/sms-kpn/v1/send",
            headers={"authorization": f"Bearer {token}", **headers},
            json={"messages": [{"mobile_number": number, "content": "console schedule"}]},
        )
        assert r.status_code == 200, r.text
        return str(r.json()["document_id"])

    scheduled = send("+31612348881", **{"X-Send-At": "+600s", "X-Priority": "high"})
    sent = send("+31612348882")
    env = {
        **os.environ,
        "CONSOLE_URL": gateway.url,
        "API_KEY": acc["api_key"],
        "API_SECRET": acc["api_secret"],
        "SCHEDULED_ID": scheduled,
        "SENT_ID": sent,
        "CHROMIUM": CHROMIUM,
    }
    run = subprocess.run(
        ["node", str(HERE / "console_schedule.mjs")], env=env, cwd=HERE, capture_output=True, text=True, timeout=90
    )
    assert run.returncode == 0, f"browser check failed:\n{run.stdout}\n{run.stderr}"
    with gateway.client(auth=(acc["api_key"], acc["api_secret"])) as c:
        assert c.get(f"/v1/messages/{scheduled}").json()["status"] == "canceled"
        assert c.get("/v1/account").json()["balance"] == "999.93000000"


def test_console_composes_counts_schedules_and_sends(gateway: GatewayProcess) -> None:
    """Issue 19: the Send page's live counter (``/v1/segments``), a refused field, a scheduled high-priority send
    canceled from its detail page, and a send now that ends delivered (``console_compose.mjs``)."""
    missing = _browser_missing()
    if missing:
        pytest.skip(missing)
    acc = gateway.create_account("compose")
    # POST /v1/messages comes from the w4-send branch: until both are merged, only the counter can be checked here
    sending = "post" in httpx.get(gateway.url + "/openapi.json").json()["paths"].get("/v1/messages", {})
    env = {**os.environ, "CONSOLE_URL": gateway.url, "API_KEY": acc["api_key"], "API_SECRET": acc["api_secret"],
           "CHROMIUM": CHROMIUM, "SENDING": "1" if sending else "0"}  # fmt: skip
    run = subprocess.run(
        ["node", str(HERE / "console_compose.mjs")], env=env, cwd=HERE, capture_output=True, text=True, timeout=90
    )
    assert run.returncode == 0, f"browser check failed:\n{run.stdout}\n{run.stderr}"
    if not sending:
        pytest.skip("counter checked; sending needs POST /v1/messages (w4-send), not in this build")
    with gateway.client(auth=(acc["api_key"], acc["api_secret"])) as c:
        sent = c.get("/v1/messages", params={"direction": "outbound"}).json()["messages"]
        assert sorted(m["status"] for m in sent) in (["canceled", "delivered"], ["canceled", "submitted"])
