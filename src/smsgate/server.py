"""Run one gateway node: the runtime (store, dispatcher, connectors) and uvicorn serving the app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import uvicorn

from smsgate.api import app as api_app
from smsgate.runtime import Runtime
from smsgate.settings import Settings


def banner_lines(settings: Settings, demo: dict[str, Any] | None) -> list[str]:
    base = settings.public_url or f"http://{settings.host}:{settings.port}"
    lines = [f"smsgate listening on {base}  (docs: {base}/docs, database: {settings.effective_database_url})"]
    if demo is None:
        return lines
    lines += [
        "",
        "Sandbox mode: a demo account was created. Its secret is shown only now:",
        f"  api_key    {demo['api_key']}",
        f"  api_secret {demo['api_secret']}",
        "",
        "Try it:",
        f"  TOKEN=$(curl -s -X POST '{base}/oauth/client_credential/accesstoken?grant_type=client_credentials' \\",
        f"      -d 'client_id={demo['api_key']}&client_secret={demo['api_secret']}' | python3 -c 'import json,sys;print(json.load(sys.stdin)[\"access_token\"])')",
        f'  curl -s -X POST {base}/messaging/sms-kpn/v1/send -H "Authorization: Bearer $TOKEN" \\',
        "      -H 'Content-Type: application/json' \\",
        '      -d \'{"sender":"KPN API","messages":[{"mobile_number":"+31612345678","content":"Hi from KPN!"}]}\'',
        f'  curl -s {base}/sandbox/handsets/31612345678/messages -H "Authorization: Bearer $TOKEN"',
    ]
    return lines


async def serve(settings: Settings, *, banner: Callable[[str], None] = print) -> None:
    async with Runtime(settings) as runtime:
        app = api_app.create_app(runtime)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="httptools",
            loop="none",
            timeout_graceful_shutdown=5,
        )
        server = uvicorn.Server(config)
        for line in banner_lines(settings, runtime.demo):
            banner(line)
        await server.serve()
