"""Schemathesis against the gateway's own ``/openapi.json``: every operation, every dialect, a real gateway.

The bounded CI run: documented examples plus ``MAX_EXAMPLES`` schema-valid and as many schema-violating cases per
operation, derandomized so CI sees the same cases every time. No answer may be a 5xx, and each must have a
documented status, content type and body. The long run is ``bench/fuzz.py`` (docs/testing.md).
"""

from __future__ import annotations

import pathlib
import types
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema_rs
import orjson
import pytest
from starlette.requests import Request

from smsgate import errors
from smsgate.api import app as api_app
from smsgate.runtime import Runtime
from smsgate.settings import Settings
from tests import fuzzing
from tests.support import GatewayProcess, gateway_process

MAX_EXAMPLES = 8
ACCOUNT_READ = "GET /v1/messages/{message_id}"
SETTINGS_READ = "GET /v1/account/webhooks"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    with gateway_process(tmp_path_factory.mktemp("fuzz"), env=fuzzing.GATEWAY_ENV) as gw:
        yield gw


def document(gw: GatewayProcess) -> dict[str, Any]:
    raw: dict[str, Any] = httpx.get(gw.url + "/openapi.json").json()
    return raw


@pytest.mark.slow
def test_every_operation_answers_as_documented(gateway: GatewayProcess) -> None:
    schema = fuzzing.load_schema(gateway.url)
    report = fuzzing.fuzz(schema, fuzzing.prepare(gateway), max_examples=MAX_EXAMPLES)

    labels = {op.label for op in fuzzing.operations(schema)}
    assert len(labels) >= 30
    assert set(report.cases) == labels, "operations never fuzzed: " + ", ".join(sorted(labels - set(report.cases)))
    assert not report.findings, report.summary()
    assert "Traceback" not in gateway.log.read_text(), gateway.log.read_text()[-5000:]


def test_document_declares_what_the_dialects_answer(gateway: GatewayProcess) -> None:
    """FastAPI's automatic 422 is never answered (validation errors are each dialect's 400; our only 422 is a reused
    Idempotency-Key on POST /v1/messages), and every operation
    but the token endpoint names the credentials it takes."""
    raw = document(gateway)
    for path, item in raw["paths"].items():
        for method, op in item.items():
            ours = "Idempotency-Key" in op["responses"].get("422", {}).get("description", "")  # a reused key
            assert "422" not in op["responses"] or ours, (method, path)
            assert op.get("security") or path == "/oauth/client_credential/accesstoken", (method, path)
    assert "HTTPValidationError" not in raw["components"].get("schemas", {})
    schemes = raw["components"]["securitySchemes"]
    assert {"kpnOAuth2", "basicAuth", "operatorToken"} <= set(schemes)


@pytest.mark.parametrize(
    "failure",
    [errors.StoreUnavailable(), errors.AuthError(), errors.RateLimited(retry_after=2.0)],
    ids=lambda e: type(e).__name__,
)
async def test_failures_any_route_can_meet_are_declared(failure: Exception, tmp_path: pathlib.Path) -> None:
    """The store going away, bad credentials and a limit: states a fuzzer cannot reach on a healthy gateway, so
    each operation's error answer (rendered by the app's own error path) is checked against its declaration."""
    app = api_app.create_app(Runtime(Settings(data_dir=tmp_path)))
    for path, item in app.openapi()["paths"].items():
        for method, op in item.items():
            scope = {"type": "http", "method": method.upper(), "path": path, "headers": [], "query_string": b""}
            answer = await app.state.on_error(Request({**scope, "app": app}), failure)
            declared = op["responses"].get(str(answer.status_code))
            assert declared is not None, (method, path, answer.status_code, answer.body)
            media = answer.headers["content-type"]
            assert media in declared["content"], (method, path, answer.status_code, media)
            schema = declared["content"][media].get("schema")
            if media == "application/json":
                jsonschema_rs.validate(schema, orjson.loads(answer.body))


def test_fuzzer_reports_an_undocumented_status(gateway: GatewayProcess) -> None:
    """The checks are live: with the 404 of a lookup taken out of the document, the random ids it is fuzzed
    with (all unknown) are reported."""
    raw = document(gateway)
    del raw["paths"]["/v1/messages/{message_id}"]["get"]["responses"]["404"]
    report = fuzzing.fuzz(
        fuzzing.load_schema(gateway.url, raw),
        fuzzing.prepare(gateway, "fuzz-404", data=False),
        max_examples=3,
        only=[ACCOUNT_READ],
    )
    assert {(f.operation, f.status) for f in report.findings.values()} == {(ACCOUNT_READ, 404)}, report.summary()


def test_fuzzer_reports_a_body_that_does_not_match(gateway: GatewayProcess) -> None:
    raw = document(gateway)
    ok = raw["paths"]["/v1/account/webhooks"]["get"]["responses"]["200"]
    ok["content"] = {"application/json": {"schema": {"type": "object", "required": ["no_such_field"]}}}
    report = fuzzing.fuzz(
        fuzzing.load_schema(gateway.url, raw),
        fuzzing.prepare(gateway, "fuzz-body", data=False),
        max_examples=3,
        only=[SETTINGS_READ],
    )
    found = list(report.findings.values())
    assert [(f.operation, f.status) for f in found] == [(SETTINGS_READ, 200)], report.summary()
    assert "no_such_field" in found[0].message


@pytest.mark.parametrize(
    ("url", "confined"),
    [
        ("http://example.com/hook", True),
        ("HTTPS://10.0.0.1:8443/x", True),
        ("http://2130706433/", True),  # 127.0.0.1 written as one number: still rewritten, to be safe
        ("http://127.0.0.1:9/fuzz", False),
        ("ftp://example.com/", False),  # the gateway refuses these itself
        ("not a url", False),
        ("", False),
    ],
)
def test_generated_webhook_urls_never_leave_loopback(url: str, confined: bool) -> None:
    """Fuzzed input must never make the gateway deliver a webhook off this machine."""
    case = types.SimpleNamespace(body={"callback": url, "text": url}, query={"moHttpUrl": url})
    assert fuzzing.confine_urls(case)
    assert case.body["callback"] == case.query["moHttpUrl"] == (fuzzing.SAFE_URL if confined else url)
    assert case.body["text"] == url
    case.body = f"callback={url}".encode()
    assert fuzzing.confine_urls(case) is ("://" not in url)
