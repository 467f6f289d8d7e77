"""The deployment files, run for real (issue 15, item 9): Debian's nginx with ``deploy/nginx.conf`` in front of a
gateway (TLS termination, a KPN send, the console's live stream, X-Forwarded-For), and ``deploy/smsgate.service``
(verified by systemd, its ExecStart run and stopped with its KillSignal within its TimeoutStopSec).

nginx is required, not optional: the test fails (never skips) without it (``apt-get install nginx``; ``.ci/run``
installs it).
"""

from __future__ import annotations

import configparser
import contextlib
import os
import pathlib
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from smsgate import tls
from tests.support import SMSGATE, GatewayProcess, free_port, wait_for

ROOT = pathlib.Path(__file__).parents[3]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


class Nginx:
    """``deploy/nginx.conf`` with only its addresses and certificate paths changed, under a private prefix."""

    def __init__(self, tmp: pathlib.Path, upstream_port: int) -> None:
        if not pathlib.Path(NGINX).exists():
            pytest.fail("Debian's nginx is needed for the reverse-proxy test: apt-get install nginx", pytrace=False)
        self.tmp = tmp
        self.https_port, self.http_port = free_port(), free_port()
        cert = tls.self_signed(tmp / "cert")
        self.ca = cert.cert
        site = (ROOT / "deploy" / "nginx.conf").read_text()
        site = site.replace("server 127.0.0.1:8080;", f"server 127.0.0.1:{upstream_port};")
        site = site.replace("listen 443 ssl;", f"listen 127.0.0.1:{self.https_port} ssl;")
        site = site.replace("listen 80;", f"listen 127.0.0.1:{self.http_port};")
        site = "\n".join(line for line in site.splitlines() if "listen [::]" not in line)
        site = site.replace("/etc/letsencrypt/live/sms.example.com/fullchain.pem", str(cert.cert))
        site = site.replace("/etc/letsencrypt/live/sms.example.com/privkey.pem", str(cert.key))
        temp = "\n".join(
            f"  {kind}_temp_path {tmp / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach the private temp dirs
        self.conf = tmp / "nginx.conf"
        self.conf.write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {tmp / 'nginx.pid'};\nerror_log {tmp / 'error.log'} info;\n"
            f"events {{ worker_connections 256; }}\nhttp {{\n  access_log {tmp / 'access.log'};\n{temp}\n{site}\n}}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Nginx:
        check = subprocess.run([NGINX, "-t", "-p", str(self.tmp), "-c", str(self.conf), "-e", str(self.tmp / "error.log")],
                               capture_output=True, text=True, timeout=30)  # fmt: skip
        assert check.returncode == 0, f"nginx -t refused deploy/nginx.conf:\n{check.stderr}"
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.tmp), "-c", str(self.conf), "-e", str(self.tmp / "error.log")]
        )
        wait_for(lambda: self._answers(), timeout=10)
        return self

    def _answers(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(self.url + "/healthz", verify=self.verify, timeout=1).status_code == 200
        return False

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful stop
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def verify(self) -> object:
        import ssl

        return ssl.create_default_context(cafile=self.ca)


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, Nginx]]:
    gw = GatewayProcess(tmp_path_factory.mktemp("gw"), log_level="info").start()
    try:
        with Nginx(tmp_path_factory.mktemp("nginx"), gw.port) as nginx:
            yield gw, nginx
    finally:
        gw.stop()


def test_kpn_send_through_nginx_over_tls(proxied: tuple[GatewayProcess, Nginx]) -> None:
    gw, nginx = proxied
    acc = gw.create_account("proxied")
    with httpx.Client(base_url=nginx.url, verify=nginx.verify, timeout=10) as c:  # type: ignore[arg-type]
        tok = c.post(
            "/oauth/client_credential/accesstoken?grant_type=client_credentials",
            data={"client_id": acc["api_key"], "client_secret": acc["api_secret"]},
        ).json()["access_token"]
        sent = c.post(
            "/messaging/sms-kpn/v1/send",
            headers={"Authorization": f"Bearer {tok}"},
            json={"messages": [{"mobile_number": "0612345678", "content": "through nginx"}]},
        )
        assert sent.status_code == 200 and sent.json()["status"] == "OK", sent.text
        assert sent.headers["strict-transport-security"]
        mid = sent.json()["document_id"]
        wait_for(
            lambda: (
                c.get(f"/v1/messages/{mid}", auth=(acc["api_key"], acc["api_secret"])).json()["status"] == "delivered"
            )
        )
        # an oversized body reaches the gateway, which refuses it in the API's own format (not nginx's HTML 413)
        big = c.post("/messaging/sms-kpn/v1/send", headers={"Authorization": f"Bearer {tok}",
                     "Content-Type": "application/json"}, content=b"x" * (1_100_000))  # fmt: skip
        assert big.status_code == 400 and "errorResponse" in big.json()
    # plain HTTP is redirected to HTTPS, keeping the method (308)
    plain = httpx.post(f"http://127.0.0.1:{nginx.http_port}/messaging/sms-kpn/v1/send", follow_redirects=False)
    assert plain.status_code == 308 and plain.headers["location"].startswith("https://")
    # the gateway saw the proxy's connection and the client's address in X-Forwarded-For (nginx's access log)
    assert '"POST /messaging/sms-kpn/v1/send HTTP/1.1" 200' in (nginx.tmp / "access.log").read_text()


def test_console_stream_through_nginx_is_live(proxied: tuple[GatewayProcess, Nginx]) -> None:
    """The console's event stream passes nginx unbuffered: a message sent after the stream opened shows up on it
    (as delivered) while the stream is still open."""
    gw, nginx = proxied
    acc = gw.create_account("stream")
    auth = (acc["api_key"], acc["api_secret"])
    seen = ""
    sent: dict[str, str] = {}

    def send_later() -> None:
        time.sleep(0.5)
        with httpx.Client(base_url=nginx.url, verify=nginx.verify, timeout=10, auth=auth) as c:  # type: ignore[arg-type]
            r = c.post("/v1/send-sms", json={"to": "31612345678", "text": "streamed through nginx"})
            sent["id"] = r.json()["message_id"]

    with (
        httpx.Client(base_url=nginx.url, verify=nginx.verify, timeout=15, auth=auth) as c,  # type: ignore[arg-type]
        c.stream("GET", "/console/api/stream") as s,
    ):
        assert s.status_code == 200 and s.headers["content-type"].startswith("text/event-stream")
        sender = threading.Thread(target=send_later)
        sender.start()
        deadline = time.monotonic() + 15
        for chunk in s.iter_text():
            seen += chunk
            if sent.get("id", "?") in seen and '"delivered"' in seen.split(sent["id"], 1)[-1]:
                break
            assert time.monotonic() < deadline, f"the stream did not show the message live: {seen[-500:]!r}"
        sender.join(10)
    assert "event: messages" in seen


def test_client_address_through_the_proxy_only_when_trusted(tmp_path: pathlib.Path) -> None:
    """A failed login through nginx from 127.0.0.2 is recorded with 127.0.0.2 when
    SMSGATE_TRUSTED_PROXIES names the proxy (127.0.0.1), and with the proxy's 127.0.0.1 when it does not."""
    for trusted, expected in (("127.0.0.1", "127.0.0.2"), ("", "127.0.0.1")):
        gw = GatewayProcess(tmp_path / f"gw{trusted or 'none'}", env={"SMSGATE_TRUSTED_PROXIES": trusted},
                            log_level="info").start()  # fmt: skip
        try:
            with Nginx(tmp_path / f"nginx{trusted or 'none'}", gw.port) as nginx:
                transport = httpx.HTTPTransport(local_address="127.0.0.2", verify=nginx.verify)  # type: ignore[arg-type]
                with httpx.Client(base_url=nginx.url, transport=transport, timeout=10) as c:
                    r = c.post("/v1/send-sms", auth=("no-such-key", "wrong"), json={"to": "1", "text": "x"})
                    assert r.status_code == 403
        finally:
            gw.stop()
        failed = [line for line in gw.log.read_text().splitlines() if "no-such-key" in line]
        assert failed and expected in failed[-1] and (expected == "127.0.0.1" or "127.0.0.1 " not in failed[-1])


def test_systemd_unit(tmp_path: pathlib.Path) -> None:
    unit_file = ROOT / "deploy" / "smsgate.service"
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(unit_file)
    service = unit["Service"]
    assert service["Restart"] == "on-failure" and service["KillSignal"] == "SIGTERM"
    assert service["RestartPreventExitStatus"] == "2"  # what a startup error exits with
    stop_budget = float(service["TimeoutStopSec"])
    # systemd itself accepts the unit (with the binary at this machine's path)
    if shutil.which("systemd-analyze"):
        local = tmp_path / "smsgate.service"
        local.write_text(unit_file.read_text().replace("/opt/smsgate/.venv/bin/smsgate", shutil.which("smsgate") or SMSGATE[0])
                         .replace("User=smsgate", "User=root").replace("Group=smsgate", "Group=root"))  # fmt: skip
        verify = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True, text=True, timeout=60)
        assert verify.returncode == 0, verify.stderr
    # its ExecStart, with this machine's paths and a free port, stopped as systemd stops it
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/smsgate") and argv[1] == "serve"
    port = free_port()
    config = tmp_path / "smsgate.toml"
    config.write_text("token_ttl_seconds = 600\n")
    args = [a.replace("/etc/smsgate/smsgate.toml", str(config)).replace("8080", str(port)) for a in argv[1:]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSGATE_")}
    env.update(dict(line.split("=", 1) for line in service["Environment"].split()))
    env["SMSGATE_DATA_DIR"] = str(tmp_path / "var-lib-smsgate")
    proc = subprocess.Popen([*SMSGATE, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: _healthy(port) or proc.poll() is not None, timeout=20)
        assert proc.poll() is None, proc.communicate()
        started = time.monotonic()
        proc.send_signal(getattr(signal, service["KillSignal"]))
        proc.wait(stop_budget)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    _out, err = proc.communicate()
    assert proc.returncode == 0, err  # a clean stop: Restart=on-failure does not restart it
    assert took < stop_budget / 2, f"draining took {took:.1f} s of a {stop_budget} s budget"
    assert "shutting down (SIGTERM)" in err and err.rstrip().endswith("stopped")
    assert (tmp_path / "var-lib-smsgate" / "smsgate.db").exists()


def _healthy(port: int) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5).status_code == 200
    return False
