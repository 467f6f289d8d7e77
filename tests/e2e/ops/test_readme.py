"""The README's snippets, run as pasted (only the port changed): the KPN quick start ends on ``delivered``, and the
Vonage snippet reaches the gateway over TLS with the official SDK and nothing but ``REQUESTS_CA_BUNDLE``."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

from smsgate import settings
from tests.support import GatewayProcess

ROOT = pathlib.Path(__file__).parents[3]


def block(after_heading: str, lang: str) -> str:
    """The first ``lang`` code block after the heading that starts with ``after_heading``."""
    text = (ROOT / "README.md").read_text()
    start = text.index(after_heading)
    found = re.search(rf"```{lang}\n(.*?)```", text[start:], re.S)
    assert found, f"no {lang} block after {after_heading!r}"
    return found.group(1)


def run_snippet(tmp_path: pathlib.Path, heading: str) -> subprocess.CompletedProcess[str]:
    """The ``sh`` block after ``heading``, run by bash against a fresh gateway (the README's port 8080 swapped for
    its own); the gateway is stopped after, and the run's exit status checked."""
    script = block(heading, "sh")
    gw = GatewayProcess(tmp_path / "data").start()
    try:
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script.replace("127.0.0.1:8080", f"127.0.0.1:{gw.port}")],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        gw.stop()
    assert run.returncode == 0, run.stderr
    return run


def test_quick_start_ends_delivered(tmp_path: pathlib.Path) -> None:
    run = run_snippet(tmp_path, "## Quick start")
    assert "status: delivered" in run.stdout.splitlines(), run.stdout
    assert "Hi from KPN!" in run.stdout


def test_send_later_cancel_and_priority_snippet(tmp_path: pathlib.Path) -> None:
    run = run_snippet(tmp_path, "### Send later, cancel, validity and priority")
    assert "status: canceled" in run.stdout.splitlines(), run.stdout
    assert '"code":2020' in run.stdout, run.stdout


def test_vonage_snippet_over_tls_as_pasted(tmp_path: pathlib.Path) -> None:
    serve = block("### Vonage", "sh").strip()
    assert serve.endswith("smsgate serve --tls-self-signed --port 8443"), serve
    snippet = block("### Vonage", "python")
    comment = snippet.splitlines()[0]
    bundle = comment.split("REQUESTS_CA_BUNDLE=", 1)[1].split()[0]
    # the path the README names is where --tls-self-signed writes it on the default data dir
    assert pathlib.Path(os.path.expanduser(bundle)) == settings.default_data_dir() / "tls" / "selfsigned-cert.pem"
    gw = GatewayProcess(tmp_path / "data", tls=True).start()
    try:
        assert f"REQUESTS_CA_BUNDLE={gw.ca_file}" in gw.log.read_text()  # the banner tells where the file is
        pasted = snippet.replace("127.0.0.1:8443", f"127.0.0.1:{gw.port}")

        def run_snippet(**env: str) -> subprocess.CompletedProcess[str]:
            plain = {k: v for k, v in os.environ.items() if k != "REQUESTS_CA_BUNDLE"}
            return subprocess.run(
                [sys.executable, "-c", pasted], env={**plain, **env}, capture_output=True, text=True, timeout=60
            )

        run = run_snippet(REQUESTS_CA_BUNDLE=str(gw.ca_file))
        assert run.returncode == 0, run.stderr
        assert "message_count='1'" in run.stdout and "status='0'" in run.stdout, run.stdout
        refused = run_snippet()  # without the bundle the SDK refuses the certificate: the TLS is real
        assert refused.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr
    finally:
        gw.stop()


def test_self_signed_certificate_is_kept_across_restarts(tmp_path: pathlib.Path) -> None:
    gw = GatewayProcess(tmp_path / "data", tls=True).start()
    try:
        first = pathlib.Path(str(gw.ca_file)).read_bytes()
        key = tmp_path / "data" / "tls" / "selfsigned-key.pem"
        assert key.stat().st_mode & 0o077 == 0  # the private key is readable by its owner only
    finally:
        gw.stop()
    gw.start()
    try:
        assert pathlib.Path(str(gw.ca_file)).read_bytes() == first  # clients keep trusting the same file
        with gw.client() as c:
            assert c.get("/healthz").status_code == 200
    finally:
        gw.stop()


def test_operator_certificate_files(tmp_path: pathlib.Path) -> None:
    """``--tls-cert/--tls-key`` with files made elsewhere (here by the self-signed helper in another dir)."""
    from smsgate import tls

    files = tls.self_signed(tmp_path / "elsewhere")
    gw = GatewayProcess(tmp_path / "data", args=("--tls-cert", str(files.cert), "--tls-key", str(files.key)))
    gw.url = gw.url.replace("http://", "https://")
    gw.ca_file = files.cert
    gw.start()
    try:
        with gw.client() as c:
            assert c.get("/version").json()["name"] == "smsgate"
        assert f"tls         certificate {files.cert}" in gw.log.read_text()
    finally:
        gw.stop()


def test_our_send_snippet_as_pasted_is_idempotent(tmp_path: pathlib.Path) -> None:
    """``POST /v1/messages`` with its Idempotency-Key, as pasted twice: one message, the same answer."""
    script = block("### Our own send", "sh")
    gw = GatewayProcess(tmp_path / "data").start()
    try:
        outs = [
            subprocess.run(
                ["bash", "-euo", "pipefail", "-c", script.replace("127.0.0.1:8080", f"127.0.0.1:{gw.port}")],
                capture_output=True,
                text=True,
                timeout=30,
            )
            for _ in range(2)
        ]
    finally:
        gw.stop()
    assert [o.returncode for o in outs] == [0, 0], outs[0].stderr
    assert '"status":"accepted"' in outs[0].stdout and outs[0].stdout == outs[1].stdout
