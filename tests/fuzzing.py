"""Schema fuzzing of a running gateway: schemathesis cases for every operation of its own ``/openapi.json``.

Shared by the bounded CI test (tests/e2e/test_fuzz.py) and the long run (bench/fuzz.py), so both fuzz the same
way. Each operation gets its documented examples, then schema-valid (positive) and schema-violating (negative)
cases, each sent with a real account's credentials as the operation's security requirement says (the KPN Bearer
token, HTTP Basic ``api_key:api_secret``, or the operator token). Every answer must pass the checks: no 5xx, a
documented status code and content type, and a body that matches the documented schema.

Failures are collected rather than raised, so one run reports every distinct problem (per operation, check and
status code, with the shortest reproducing ``curl``) instead of stopping at the first.

Webhook URLs in generated input (``callback``, ``receipt_url``, ``moHttpUrl``...) that the gateway would accept
are pointed at a closed loopback port before sending: the gateway under test delivers webhooks, and fuzzed
input must never make it connect anywhere but this machine. A long poll's ``wait`` is cut to 0.1 s.
"""

from __future__ import annotations

import base64
import collections
import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from smsgate import errors
from smsgate.webhooks import targets
from tests.support import GatewayProcess, run_cli

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
REQUEST_TIMEOUT = 15.0
URL_FIELDS = ("callback", "callback_url", "moHttpUrl", "receipt_url", "inbound_url", "voiceStatusCallback")
SAFE_URL = "http://127.0.0.1:9/fuzz"  # the discard port: nothing listens, the delivery fails and is retried
# The gateway's environment for fuzzing: random credentials must not lock the fuzzer's own address out, and the
# fuzzer's new token after each secret rotation must not hit the token endpoint's per-client limit.
GATEWAY_ENV = {
    "SMSGATE_AUTH_FAILURE_LIMIT": "1000000000",
    "SMSGATE_TOKEN_REQUESTS_PER_MINUTE": "1000000000",
    "SMSGATE_WEBHOOK_TIMEOUT": "1",
}


@dataclass
class Credentials:
    """One account's credentials. They change when the fuzzer calls ``rotate-secret``: the response has the new
    secret, and the old secret's tokens stop working."""

    base_url: str
    api_key: str
    api_secret: str
    operator_token: str
    token: str = ""

    def refresh_token(self) -> None:
        r = httpx.post(
            self.base_url + "/oauth/client_credential/accesstoken?grant_type=client_credentials",
            data={"client_id": self.api_key, "client_secret": self.api_secret},
            timeout=REQUEST_TIMEOUT,
        )
        r.raise_for_status()
        self.token = str(r.json()["access_token"])

    def authorization(self, operation: Any, n: int) -> str | None:
        """The Authorization header the operation's security requirement asks for (taking turns when it offers
        several, so each kind is fuzzed)."""
        schemes = [name for requirement in operation.definition.raw.get("security") or [] for name in requirement]
        if not schemes:
            return None
        scheme = schemes[n % len(schemes)]
        if scheme == "kpnOAuth2":
            return f"Bearer {self.token}"
        if scheme == "operatorToken":
            return f"Bearer {self.operator_token}"
        assert scheme == "basicAuth", scheme
        return "Basic " + base64.b64encode(f"{self.api_key}:{self.api_secret}".encode()).decode()

    def after(self, operation: Any, response: requests.Response) -> None:
        if operation.path == "/v1/account/rotate-secret" and response.status_code == 200:
            self.api_secret = response.json()["api_secret"]
            self.refresh_token()


# Pool numbers: the Phone Numbers examples' msisdn is for sale; the other belongs to the fuzzing account.
FOR_SALE = "3197010240299"
OWNED = "3197010240300"


def prepare(gw: GatewayProcess, name: str = "fuzz", *, data: bool = True) -> Credentials:
    """A fresh account on ``gw`` to fuzz with and, once per gateway (``data``), something for the fuzzed operations
    to find: numbers in the pool for the Phone Numbers operations, and a sent message with its receipt webhook for
    the reads."""
    acc = gw.create_account(name)
    if data:
        run_cli("numbers", "add", FOR_SALE, "--country", "NL", env=gw.env)
        run_cli("numbers", "add", OWNED, "--country", "NL", "--account", acc["api_key"], env=gw.env)
        with httpx.Client(base_url=gw.url, auth=(acc["api_key"], acc["api_secret"]), timeout=REQUEST_TIMEOUT) as c:
            c.put("/v1/account/webhooks", json={"receipt_url": SAFE_URL}).raise_for_status()
            c.post("/v1/send-sms", json={"to": "31612345678", "text": "fuzz"}).raise_for_status()
    return Credentials(gw.url, acc["api_key"], acc["api_secret"], gw.operator_token)


@dataclass
class Finding:
    operation: str
    title: str
    status: int
    message: str
    curl: str


@dataclass
class Report:
    """What a run did per operation (cases sent, status codes seen) and what it found."""

    cases: collections.Counter[str] = field(default_factory=collections.Counter)
    statuses: dict[str, collections.Counter[int]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    findings: dict[tuple[str, str, int], Finding] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, finding: Finding) -> None:
        key = (finding.operation, finding.title, finding.status)
        old = self.findings.get(key)
        if old is None or len(finding.curl) < len(old.curl):
            self.findings[key] = finding

    def summary(self) -> str:
        lines = [f"{sum(self.cases.values())} cases over {len(self.cases)} operations in {self.seconds:.1f} s"]
        for label in sorted(self.cases):
            codes = ", ".join(f"{c}×{n}" for c, n in sorted(self.statuses[label].items()))
            lines.append(f"  {label}: {self.cases[label]} cases ({codes})")
        lines.append(f"{len(self.findings)} distinct failure(s)")
        for f in self.findings.values():
            lines.append(f"- {f.operation}: {f.title} (HTTP {f.status})\n    {f.message[:1500]}\n    {f.curl[:1500]}")
        return "\n".join(lines)


def load_schema(base_url: str, document: dict[str, Any] | None = None) -> Any:
    """The gateway's own OpenAPI document, or ``document`` (a changed copy) served by the gateway at ``base_url``."""
    if document is None:
        return schemathesis.openapi.from_url(base_url + "/openapi.json")
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=base_url)
    return schema


def operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def fuzz(
    schema: Any,
    creds: Credentials,
    *,
    max_examples: int,
    derandomize: bool = True,
    rng_seed: int = 0,
    deadline: float | None = None,
    only: Iterable[str] | None = None,
    report: Report | None = None,
) -> Report:
    """Fuzz every operation (or those labelled in ``only``): its examples, then up to ``max_examples`` positive
    and as many negative cases.

    ``deadline`` (a ``time.monotonic()`` value) is checked between batches, so a run ends at most one batch
    (``max_examples`` cases) after it.
    """
    report = report or Report()
    start = time.monotonic()
    if not creds.token:
        creds.refresh_token()
    turn = itertools.count()
    wanted = set(only) if only is not None else None
    with requests.Session() as session:
        for operation in operations(schema):
            if wanted is not None and operation.label not in wanted:
                continue
            for kind, strategy in _strategies(operation):
                if deadline is not None and time.monotonic() > deadline:
                    break
                batch = _Batch(operation, creds, session, report, turn)
                batch.run(strategy, max_examples, derandomize, rng_seed, negative=kind == "negative")
    report.seconds += time.monotonic() - start
    return report


def _strategies(operation: Any) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    examples = operation.schema.get_strategies_from_examples(operation)
    if examples:
        out.append(("examples", st.one_of(examples)))
    out.append(("positive", operation.as_strategy(generation_mode=GenerationMode.POSITIVE)))
    out.append(("negative", operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)))
    return out


@dataclass
class _Batch:
    operation: Any
    creds: Credentials
    session: requests.Session
    report: Report
    turn: Iterator[int]

    def run(self, strategy: Any, max_examples: int, derandomize: bool, rng_seed: int, *, negative: bool) -> None:
        @settings(
            max_examples=max_examples,
            deadline=None,
            derandomize=derandomize,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        @given(case=strategy)
        def check(case: Any) -> None:
            self.send(case)

        if not derandomize:
            check = seed(rng_seed)(check)
        try:
            check()
        except Unsatisfiable:
            if not negative:
                raise
            # nothing in this operation can be made invalid (no parameters, no body): it has no negative cases

    def send(self, case: Any) -> None:
        if not confine_urls(case):
            return
        shorten_waits(case)
        authorization = self.creds.authorization(self.operation, next(self.turn))
        if authorization is not None:
            case.headers = {**(case.headers or {}), "Authorization": authorization}
        response = case.call(session=self.session, timeout=REQUEST_TIMEOUT)
        label = self.operation.label
        self.report.cases[label] += 1
        self.report.statuses[label][response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            curl = case.as_curl_command(headers=dict(response.request.headers))
            for failure in group.exceptions:
                self.report.add(Finding(label, failure.title, response.status_code, failure.message, curl))
        self.creds.after(self.operation, response)


def confine_urls(case: Any) -> bool:
    """Point every webhook URL the gateway would accept at a closed loopback port; False: do not send the case
    (a body that is not a mapping but may hold a URL)."""
    for container in (case.body, case.query):
        if isinstance(container, dict):
            for key in URL_FIELDS:
                value = container.get(key)
                if isinstance(value, str) and _reachable(value):
                    container[key] = SAFE_URL
        elif isinstance(container, str | bytes):
            raw = container.encode("utf-8", "replace") if isinstance(container, str) else container
            if b"://" in raw:
                return False
    return True


def shorten_waits(case: Any) -> None:
    """A long poll's ``wait`` (``/sandbox/.../latest``) is a time, not input worth checking at length: fuzzed cases
    wait at most 0.1 s, so a run lasts as long as its cases do (the answers are checked all the same)."""
    if isinstance(case.query, dict) and "wait" in case.query:
        try:
            if float(case.query["wait"]) > 0.1:
                case.query["wait"] = 0.1
        except (TypeError, ValueError, OverflowError):
            pass  # not a number: the gateway's 400 is what the case is for


def _reachable(url: str) -> bool:
    """Whether the gateway's own URL rule would take ``url`` as a webhook target on a host other than 127.0.0.1."""
    try:
        target = targets.parse(url)
    except errors.InvalidUrl:
        return False
    return target.host != "127.0.0.1"
