"""Swagger UI works offline (issue 15, item 8): ``/docs`` names no other host, its assets come from the gateway,
and Chromium renders the whole API with every request outside the gateway refused."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess

import httpx
import pytest

from tests.support import GatewayProcess

CONSOLE = pathlib.Path(__file__).parents[1] / "console"
ROOT = pathlib.Path(__file__).parents[3]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
_URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']""")


def test_docs_page_references_only_the_gateway(gateway: GatewayProcess) -> None:
    page = httpx.get(gateway.url + "/docs")
    assert page.status_code == 200
    refs = [a or b for a, b in _URL.findall(page.text)]
    assert refs and all(r.startswith("/") and not r.startswith("//") for r in refs), refs
    assert "http://" not in page.text and "https://" not in page.text
    for ref in refs:
        asset = httpx.get(gateway.url + ref)
        assert asset.status_code == 200 and asset.content, ref
    js = httpx.get(gateway.url + "/docs/assets/swagger-ui-bundle.js")
    assert "javascript" in js.headers["content-type"] and len(js.content) > 500_000
    assert httpx.get(gateway.url + "/docs/assets/../settings.py").status_code == 404
    assert httpx.get(gateway.url + "/docs/assets/index.html").status_code == 404
    assert httpx.get(gateway.url + "/docs/oauth2-redirect").status_code == 200


def test_docs_render_offline_in_chromium(gateway: GatewayProcess) -> None:
    missing = [
        what
        for what, ok in (
            ("node", shutil.which("node") is not None),
            (f"chromium at {CHROMIUM} (apt-get install chromium)", pathlib.Path(CHROMIUM).exists()),
            ("playwright-core (npm ci --prefix tests/e2e/console)", (CONSOLE / "node_modules" / "playwright-core").is_dir()),
        )
        if not ok
    ]  # fmt: skip
    if missing:
        pytest.fail(f"the browser check needs: {', '.join(missing)}", pytrace=False)
    artifacts = ROOT / "artifacts" / "docs"
    artifacts.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DOCS_URL": gateway.url, "CHROMIUM": CHROMIUM, "ARTIFACTS": str(artifacts)}
    run = subprocess.run(
        ["node", str(CONSOLE / "docs_check.mjs")], env=env, cwd=CONSOLE, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, f"browser check failed:\n{run.stdout}\n{run.stderr}"
