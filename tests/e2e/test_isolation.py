"""Two accounts over every route that reads or changes account data: nothing of one is visible to, or
changeable by, the other (issue #10 item 5).

One real gateway process on SQLite; two parties, each with the same kinds of data: a sent message (parts and
events), an inbound message, an owned virtual number with a moHttpUrl, a KPN demo ``/register`` callback, webhook
settings and a delivery log. ``CASES`` is the matrix, one row per call, and every row runs both ways (B against
A, then A against B). A row is one of three kinds:

* ``DENIED``: the caller names the other party's object (id, number, delivery); the answer is the dialect's own
  refusal, and a changing call leaves the other party's state (read back as that party) exactly as it was;
* ``OWN``: a list or self-service call; it shows the caller's data and none of the other party's;
* ``SEND``: whatever the call creates belongs to the caller and is invisible to the other party.

No answer may carry a marker of the other party (ids, texts, numbers, URLs, key) that the caller did not send
itself, and none may be a 5xx. ``test_every_route_is_in_the_matrix`` reads the app's route table, so a new route
fails the suite until it gets a row here or an entry in ``NOT_ACCOUNT_SCOPED`` with the reason.
"""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pytest

from smsgate.store import accounts as store_accounts
from smsgate.store import engine as store_engine
from smsgate.store import numbers as store_numbers
from tests.e2e.test_nexmo_kpn import Receiver, random_mobile
from tests.support import GatewayProcess, wait_for

DENIED, OWN, SEND = "denied", "own", "send"
NEXMO = "/communication/nexmo"
NOT_FOUND = {"error": {"code": "not_found"}}  # our /v1 and /console shape
VONAGE_420 = {"error-code": "420"}  # Phone Numbers API: "method failed" (not yours / not available)
KPN_BAD_REQUEST = {"name": "Bad Request"}  # KPN's flat ErrorResponse on /communication/nexmo/sms/register

Check = Callable[["World", "Party", httpx.Response], None]


def virtual_number() -> str:
    return "31970" + "".join(secrets.choice("0123456789") for _ in range(8))


@dataclasses.dataclass
class Party:
    """One account and the data it owns; ``secret``/``token`` change when the matrix rotates the secret."""

    name: str
    account_id: str
    api_key: str
    secret: str
    token: str
    number: str  # owned virtual number, moHttpUrl = hook
    test_number: str  # KPN demo /register callback
    hook: str  # receipt_url, inbound_url and moHttpUrl
    out_text: str
    in_text: str
    script_text: str  # what its script on the shared handset matches (never sent, so it never answers)
    out_id: str = ""
    in_id: str = ""
    delivery_ids: tuple[str, ...] = ()
    clients: dict[tuple[str, str], httpx.Client] = dataclasses.field(default_factory=dict, repr=False)

    def markers(self) -> list[str]:
        fixed = [self.account_id, self.api_key, self.number, self.test_number, self.hook, self.out_text]
        return [*fixed, self.script_text, self.in_text, self.out_id, self.in_id, *self.delivery_ids]

    def basic(self, gw: GatewayProcess) -> httpx.Client:
        return self._client(gw, "basic", self.secret)

    def bearer(self, gw: GatewayProcess) -> httpx.Client:
        return self._client(gw, "bearer", self.token)

    def _client(self, gw: GatewayProcess, kind: str, credential: str) -> httpx.Client:
        """Kept open per credential: a new httpx client costs ~0.1 s (its TLS context), a call a few ms."""
        if (kind, credential) not in self.clients:
            bearer = {"headers": {"authorization": f"Bearer {credential}"}}
            kw: dict[str, Any] = {"auth": (self.api_key, credential)} if kind == "basic" else bearer
            self.clients[kind, credential] = gw.client(**kw)
        return self.clients[kind, credential]


@dataclasses.dataclass
class World:
    gw: GatewayProcess
    parties: dict[str, Party]
    handset: str  # both parties write to it and it replies to both: only the account filter tells them apart
    pool: str  # an available number, so a search has something to show
    anonymous: httpx.Client  # for credentials in the query string


@dataclasses.dataclass(frozen=True)
class Case:
    """One call of the matrix. Strings in ``url``/``params``/``form``/``json`` are templates over ``me`` (the
    caller), ``other``, ``w`` (the world) and ``tag`` (unique per call)."""

    kind: str
    method: str
    route: str  # the app's path template: what the route-table guard matches
    url: str = ""  # the concrete URL; default ``route``
    auth: str = "basic"  # basic | token (KPN OAuth2 Bearer) | params (api_key/api_secret in the query)
    params: Mapping[str, str] | None = None
    form: Mapping[str, str] | None = None
    json: Any = None
    status: int = 200
    error: Mapping[str, Any] | None = None  # a subset the refusal's JSON body must contain
    shows: str | None = None  # text the answer must contain (the caller's own data)
    check: Check | None = None  # a further check of the answer
    after: Check | None = None  # bookkeeping after the call (a rotated secret)
    sse: bool = False

    @property
    def id(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in (self.params or {}).items() if "{me." not in v)
        return f"{self.method} {self.url or self.route}" + (f"?{extra}" if extra else "")


def fill(value: Any, **ctx: Any) -> Any:
    if isinstance(value, str):
        return value.format(**ctx)
    if isinstance(value, Mapping):
        return {k: fill(v, **ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, **ctx) for v in value]
    return value


def contains(body: Any, subset: Mapping[str, Any]) -> bool:
    if not isinstance(body, Mapping):
        return False
    return all(contains(body.get(k), v) if isinstance(v, Mapping) else body.get(k) == v for k, v in subset.items())


# -- custom checks -----------------------------------------------------------------------------------------------
def _own_list(w: World, me: Party, **params: Any) -> list[dict[str, Any]]:
    c = me.basic(w.gw)
    r = c.get("/v1/messages", params={"limit": 500, **params})
    assert r.status_code == 200, r.text
    return list(r.json()["messages"])


def balance_is_mine(w: World, me: Party, r: httpx.Response) -> None:
    c = me.basic(w.gw)
    mine = Decimal(c.get("/v1/account").json()["balance"])
    assert Decimal(str(r.json()["value"])) == mine


def stats_are_mine(w: World, me: Party, r: httpx.Response) -> None:
    totals = r.json()["totals"]
    since = r.json()["start"]
    for direction in ("outbound", "inbound"):
        assert totals[direction] == len(_own_list(w, me, direction=direction, since=since)), direction


def handset_count_is_mine(w: World, me: Party, r: httpx.Response) -> None:
    counts = {h["msisdn"]: h["messages"] for h in r.json()["handsets"]}
    assert counts["+" + w.handset] == len(_own_list(w, me, number="+" + w.handset))


def latest_is_mine(w: World, me: Party, r: httpx.Response) -> None:
    assert me.basic(w.gw).get(f"/v1/messages/{r.json()['id']}").status_code == 200


def put_script(client: httpx.Client, handset: str, p: Party) -> None:
    r = client.put(f"/sandbox/handsets/{handset}/script", json={"rules": [{"match": p.script_text, "reply": "never"}]})
    assert r.status_code == 200, r.text


def restore_script(w: World, me: Party, r: httpx.Response) -> None:
    """The row deleted the caller's script: put it back for the rows after it."""
    put_script(me.basic(w.gw), w.handset, me)


def take_new_secret(w: World, me: Party, r: httpx.Response) -> None:
    """The rotation revoked the caller's secret and tokens: later rows use the new ones."""
    old = me.secret
    me.secret = r.json()["api_secret"]
    assert me.secret != old
    assert w.anonymous.get("/v1/account", auth=(me.api_key, old)).status_code == 401
    me.token = w.gw.token({"api_key": me.api_key, "api_secret": me.secret})


# -- the matrix --------------------------------------------------------------------------------------------------
_NUMBER = {"country": "NL", "msisdn": "{other.number}"}
_UPDATE = {**_NUMBER, "moHttpUrl": "{me.hook}"}
_SEARCH = {"country": "NL", "pattern": "31970", "size": "100"}
_VONAGE_SMS = {"from": "smsgate", "to": "{w.handset}", "text": "{tag}"}
_NOTHING = '"messages":[]'
_LATEST, _LATEST_URL = "/sandbox/handsets/{msisdn}/messages/latest", "/sandbox/handsets/{w.handset}/messages/latest"
_SCRIPT, _SCRIPT_URL = "/sandbox/handsets/{msisdn}/script", "/sandbox/handsets/{w.handset}/script"

CASES: list[Case] = [
    # messages, with their parts and events: by id, in lists, with filters
    Case(DENIED, "GET", "/v1/messages/{message_id}", "/v1/messages/{other.out_id}", status=404, error=NOT_FOUND),
    Case(DENIED, "GET", "/v1/messages/{message_id}", "/v1/messages/{other.in_id}", status=404, error=NOT_FOUND),
    Case(DENIED, "GET", "/v1/messages/{message_id}", "/v1/messages/{other.out_id}", "token", status=404, error=NOT_FOUND),
    Case(DENIED, "POST", "/v1/messages/{message_id}/cancel", "/v1/messages/{other.out_id}/cancel", status=404, error=NOT_FOUND),
    Case(DENIED, "POST", "/v1/messages/{message_id}/cancel", "/v1/messages/{other.in_id}/cancel", "token", status=404, error=NOT_FOUND),
    Case(OWN, "GET", "/v1/messages", shows="{me.out_id}"),
    Case(OWN, "GET", "/v1/messages", auth="token", params={"direction": "inbound"}, shows="{me.in_id}"),
    Case(OWN, "GET", "/v1/messages", params={"number": "+{w.handset}"}, shows="{me.out_id}"),
    Case(OWN, "GET", "/v1/messages", params={"number": "+{other.number}"}, shows=_NOTHING),
    Case(OWN, "GET", "/v1/messages", params={"q": "{other.out_text}"}, shows=_NOTHING),
    Case(DENIED, "GET", "/console/api/messages/{message_id}", "/console/api/messages/{other.out_id}", status=404, error=NOT_FOUND),
    Case(DENIED, "GET", "/console/api/messages/{message_id}", "/console/api/messages/{other.in_id}", "token", status=404, error=NOT_FOUND),
    Case(OWN, "GET", "/console/api/messages", shows="{me.in_id}"),
    Case(OWN, "GET", "/console/api/messages", params={"number": "{w.handset}"}, shows="{me.out_id}"),
    Case(OWN, "GET", "/console/api/messages", params={"number": "{other.number}"}, shows=_NOTHING),
    Case(OWN, "GET", "/console/api/stream", params={"after": "0"}, shows="{me.out_id}", sse=True),
    Case(OWN, "GET", "/console/api/whoami", auth="token", shows="{me.account_id}"),
    # sandbox handsets: one handset talks to both parties
    Case(OWN, "GET", "/sandbox/handsets/{msisdn}/messages", "/sandbox/handsets/{w.handset}/messages", shows="{me.in_id}"),
    Case(OWN, "GET", "/sandbox/handsets/{msisdn}/messages", "/sandbox/handsets/{other.number}/messages", shows=_NOTHING),
    Case(OWN, "GET", "/console/api/handsets", check=handset_count_is_mine),
    Case(OWN, "GET", "/console/api/handsets/{msisdn}", "/console/api/handsets/{w.handset}", shows="{me.out_id}"),
    Case(SEND, "POST", "/sandbox/handsets/{msisdn}/reply", "/sandbox/handsets/{w.handset}/reply", json={"to": "{me.number}", "text": "{tag}"}, status=202),
    # the sandbox as a test double (reset and a handset's deletion: ISOLATED_ELSEWHERE): a script and a behaviour each
    Case(OWN, "GET", _LATEST, _LATEST_URL, check=latest_is_mine),
    Case(OWN, "GET", _LATEST, _LATEST_URL, auth="token", params={"wait": "0.2"}, check=latest_is_mine),
    Case(DENIED, "GET", _LATEST, _LATEST_URL, params={"since": "{other.out_id}"}, status=400, error={"error": {"code": "invalid_request"}}),
    Case(OWN, "GET", _SCRIPT, _SCRIPT_URL, shows="{me.script_text}"),
    Case(OWN, "PUT", _SCRIPT, _SCRIPT_URL, json={"rules": [{"match": "{me.script_text}", "reply": "never"}]}, shows="{me.script_text}"),
    Case(OWN, "DELETE", _SCRIPT, _SCRIPT_URL, auth="token", status=204, after=restore_script),
    Case(OWN, "PUT", "/sandbox/behaviour", json={"receipts": {"duplicate": 1}}, shows='"duplicate":1.0'),
    Case(OWN, "GET", "/sandbox/behaviour", auth="token", shows='"duplicate":1.0'),
    Case(OWN, "DELETE", "/sandbox/behaviour", shows='"duplicate":0.0'),
    # operator only (no reader shows the switch, but the SEND rows below need the network up)
    Case(DENIED, "POST", "/sandbox/network", json={"available": False}, status=401, error={"error": {"code": "unauthorized"}}),
    Case(DENIED, "GET", "/v1/connectors", status=401, error={"error": {"code": "unauthorized"}}),
    Case(DENIED, "POST", "/v1/connectors/{name}/pause", "/v1/connectors/sandbox/pause", "token", status=401, error={"error": {"code": "unauthorized"}}),
    Case(DENIED, "POST", "/v1/connectors/{name}/resume", "/v1/connectors/sandbox/resume", status=401, error={"error": {"code": "unauthorized"}}),
    # sending: what the call creates is the caller's
    Case(SEND, "POST", "/messaging/sms-kpn/v1/send", auth="token", json={"messages": [{"mobile_number": "+{w.handset}", "content": "{tag}"}]}),
    Case(SEND, "POST", "/communication/kpn/sms/send", auth="token", json={"messages": [{"mobile_number": "+{w.handset}", "content": "{tag}"}]}),
    Case(SEND, "POST", "/v1/batches", json={"text": "{tag}", "recipients": [{"to": "+{w.handset}"}]}, status=201),
    Case(SEND, "POST", NEXMO + "/sms/send", auth="token", form=_VONAGE_SMS),
    Case(SEND, "POST", "/sms/json", form=_VONAGE_SMS),
    Case(SEND, "GET", "/sms/json", auth="params", params=_VONAGE_SMS),
    Case(SEND, "POST", "/sms/xml", form=_VONAGE_SMS),
    Case(SEND, "GET", "/sms/xml", auth="params", params=_VONAGE_SMS),
    Case(SEND, "POST", "/v1/send-sms", json={"to": "{w.handset}", "text": "{tag}"}, status=202),
    Case(SEND, "POST", "/v1/messages", json={"to": "+{w.handset}", "text": "{tag}"}, status=201),
    Case(SEND, "POST", "/v1/messages", auth="token", json={"to": "+{w.handset}", "text": "{tag}"}, status=201),
    # numbers: Vonage native and through KPN
    Case(DENIED, "POST", "/number/update", form=_UPDATE, status=420, error=VONAGE_420),
    Case(DENIED, "POST", "/number/update", form={**_NUMBER, "moHttpUrl": ""}, status=420, error=VONAGE_420),
    Case(DENIED, "POST", "/number/cancel", form=_NUMBER, status=420, error=VONAGE_420),
    Case(DENIED, "POST", "/number/buy", form=_NUMBER, status=420, error=VONAGE_420),
    Case(OWN, "GET", "/number/search", params=_SEARCH, shows="{w.pool}"),
    Case(OWN, "GET", "/account/numbers", shows="{me.number}"),
    # a demo account (as every party is) manages webhooks with /register; number/update is for production ones
    Case(DENIED, "POST", NEXMO + "/phone-numbers/number/update", auth="token", form=_UPDATE, status=403, error={"name": "Forbidden"}),
    Case(DENIED, "POST", NEXMO + "/phone-numbers/number/cancel", auth="token", form=_NUMBER, status=420, error=VONAGE_420),
    Case(DENIED, "POST", NEXMO + "/phone-numbers/number/buy", auth="token", form=_NUMBER, status=420, error=VONAGE_420),
    Case(OWN, "GET", NEXMO + "/phone-numbers/number/search", auth="token", params=_SEARCH, shows="{w.pool}"),
    Case(OWN, "GET", NEXMO + "/phone-numbers/account/numbers", auth="token", shows="{me.number}"),
    # KPN demo callbacks: neither the other's virtual number nor the other's registered test number
    Case(DENIED, "POST", NEXMO + "/sms/register", auth="token", form={"to": "{other.number}", "callback_url": "{me.hook}"}, status=400, error=KPN_BAD_REQUEST),
    Case(DENIED, "POST", NEXMO + "/sms/register", auth="token", form={"to": "{other.test_number}", "callback_url": "{me.hook}"}, status=400, error=KPN_BAD_REQUEST),
    # webhooks: the delivery log, replay, the account's settings
    Case(DENIED, "GET", "/v1/webhooks/deliveries/{delivery_id}", "/v1/webhooks/deliveries/{other.delivery_ids[0]}", status=404, error=NOT_FOUND),
    Case(DENIED, "POST", "/v1/webhooks/deliveries/{delivery_id}/replay", "/v1/webhooks/deliveries/{other.delivery_ids[0]}/replay", status=404, error=NOT_FOUND),
    Case(OWN, "GET", "/v1/webhooks/deliveries", shows="{me.delivery_ids[0]}"),
    Case(OWN, "GET", "/v1/webhooks/deliveries", auth="token", params={"message": "{other.out_id}"}, shows='"deliveries":[]'),
    Case(OWN, "GET", "/v1/webhooks/deliveries", params={"target": "{other.hook}"}, shows='"deliveries":[]'),
    Case(OWN, "GET", "/v1/account/webhooks", shows="{me.hook}"),
    Case(OWN, "PUT", "/v1/account/webhooks", json={"receipt_url": "{me.hook}", "inbound_url": "{me.hook}"}, shows="{me.hook}"),
    # the account itself: settings, balance, traffic, secret
    Case(OWN, "GET", "/v1/account", auth="token", shows="{me.api_key}"),
    Case(OWN, "GET", "/account/get-balance", check=balance_is_mine),
    Case(OWN, "GET", "/v1/account/stats", check=stats_are_mine),
    Case(OWN, "POST", "/v1/account/rotate-secret", shows="{me.api_key}", after=take_new_secret),
]  # fmt: skip

# Routes with no account data to isolate (each is exercised by its own dialect's tests).
NOT_ACCOUNT_SCOPED: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "liveness",
    ("GET", "/readyz"): "node readiness: database and connector states, no account data",
    ("GET", "/version"): "the running version",
    ("GET", "/docs/assets/{name}"): "Swagger UI's static files",
    ("GET", "/metrics"): "operator-only aggregate counters (operator token when set; tests/e2e/test_metrics.py)",
    ("GET", "/openapi.json"): "public API description",
    ("GET", "/docs"): "Swagger UI page",
    ("GET", "/docs/oauth2-redirect"): "Swagger UI page",
    ("GET", "/console"): "static console shell",
    ("GET", "/console/"): "static console shell",
    ("GET", "/console/static/{name}"): "static console files",
    ("POST", "/oauth/client_credential/accesstoken"): "credential exchange; its tokens drive the token rows",
    ("OPTIONS", "/messaging/sms-kpn/v1/send"): "CORS preflight",
    ("OPTIONS", "/communication/kpn/sms/send"): "CORS preflight",
    ("POST", "/v1/segments"): "pure computation over the request's own text",
    **{
        (method, f"/connectors/{{name}}/{kind}"): "an upstream's callback: no account credentials, the connector "
        "checks the upstream's signature or token (tests/e2e/test_relay.py, test_http_template.py)"
        for method in ("GET", "POST")
        for kind in ("receipts", "inbound")
    },
}


# Routes that delete the caller's own conversations: a row would take the party's data from the rows after it, so each
# has its own test with two accounts (the other's conversations, scripts and behaviour untouched).
ISOLATED_ELSEWHERE: dict[tuple[str, str], str] = {
    ("GET", "/console/api/batches"): "tests/e2e/console/test_console_batches.py::test_console_batches_are_scoped",
    **{
        ("GET", route): "tests/e2e/test_batches.py::test_a_batch_refuses_bad_recipients_and_sends_the_rest"
        for route in ("/v1/batches", "/v1/batches/{batch_id}", "/v1/batches/{batch_id}/messages")
    },
    ("POST", "/v1/batches/{batch_id}/cancel"): (
        "tests/e2e/test_batches.py::test_cancel_stops_what_is_not_yet_submitted_and_refunds_it"
    ),
    ("POST", "/sandbox/reset"): "tests/e2e/test_sandbox_control.py::test_reset_touches_only_the_calling_account",
    (
        "DELETE",
        "/sandbox/handsets/{msisdn}/messages",
    ): "tests/e2e/test_sandbox_control.py::test_delete_a_handsets_conversation",
    **dict.fromkeys(
        [
            ("GET", "/v1/suppressions"),
            ("GET", "/v1/suppressions/{msisdn}"),
            ("PUT", "/v1/suppressions/{msisdn}"),
            ("DELETE", "/v1/suppressions/{msisdn}"),
        ],
        "tests/e2e/test_suppressions.py::test_each_account_has_its_own_list",
    ),
    ("GET", "/v1/messages/export"): "tests/e2e/test_export.py::test_export_streams_only_the_accounts_messages",
}


# -- the world ---------------------------------------------------------------------------------------------------
def _pool(gw: GatewayProcess, owned: Mapping[str, str | None]) -> None:
    """Numbers straight into the pool, ``msisdn -> account_id`` (None: available)."""

    async def run() -> None:
        engine = store_engine.create(gw.database_url)
        try:
            store = store_numbers.NumberStore(engine)
            for msisdn, account_id in owned.items():
                await store.add(msisdn, "NL")
                if account_id is not None:
                    await store.assign(msisdn, account_id)
        finally:
            await engine.dispose()

    asyncio.run(run())


def _make_party(gw: GatewayProcess, name: str, receiver: Receiver, handset: str) -> Party:
    acc = gw.create_account(f"iso-{name}")
    tag = secrets.token_hex(4)
    p = Party(
        name=name,
        account_id=acc["account_id"],
        api_key=acc["api_key"],
        secret=acc["api_secret"],
        token=gw.token(acc),
        number=virtual_number(),
        test_number=random_mobile(),
        hook=f"{receiver.url}/{name}-{tag}",
        out_text=f"out-{name}-{tag}",
        in_text=f"in-{name}-{tag}",
        script_text=f"script-{name}-{tag}",
    )
    _pool(gw, {p.number: p.account_id})
    c, t = p.basic(gw), p.bearer(gw)
    r = c.put("/v1/account/webhooks", json={"receipt_url": p.hook, "inbound_url": p.hook})
    assert r.status_code == 200, r.text
    r = c.post("/number/update", data={"country": "NL", "msisdn": p.number, "moHttpUrl": p.hook})
    assert r.status_code == 200, r.text
    r = t.post(NEXMO + "/sms/register", data={"to": p.test_number, "callback_url": p.hook})
    assert r.status_code == 200, r.text
    put_script(p.basic(gw), handset, p)
    sent = t.post(
        "/messaging/sms-kpn/v1/send", json={"messages": [{"mobile_number": "+" + handset, "content": p.out_text}]}
    )
    assert sent.status_code == 200, sent.text
    p.out_id = sent.json()["document_id"]
    r = c.post(f"/sandbox/handsets/{handset}/reply", json={"to": p.number, "text": p.in_text})
    assert r.status_code == 202, r.text
    return p


def _settle(gw: GatewayProcess, p: Party) -> None:
    """Wait until the party's message is delivered and every webhook about its two messages has arrived."""
    c = p.basic(gw)
    wait_for(lambda: c.get(f"/v1/messages/{p.out_id}").json()["status"] == "delivered")
    p.in_id = wait_for(lambda: [m["id"] for m in c.get("/v1/messages", params={"q": p.in_text}).json()["messages"]])[0]

    def delivered() -> list[str]:
        rows = [
            d
            for mid in (p.out_id, p.in_id)
            for d in c.get("/v1/webhooks/deliveries", params={"message": mid}).json()["deliveries"]
        ]
        done = {d["message_id"] for d in rows} == {p.out_id, p.in_id} and all(d["status"] == "delivered" for d in rows)
        return [d["id"] for d in rows] if done else []

    p.delivery_ids = tuple(wait_for(delivered))


@pytest.fixture(scope="module")
def world(gateway: GatewayProcess) -> Iterator[World]:
    handset, pool = random_mobile(), virtual_number()
    with Receiver() as receiver, gateway.client() as anonymous:
        parties = {name: _make_party(gateway, name, receiver, handset) for name in ("A", "B")}
        _pool(gateway, {pool: None})
        try:
            for p in parties.values():
                _settle(gateway, p)
            yield World(gateway, parties, handset, pool, anonymous)
        finally:
            for p in parties.values():
                for client in p.clients.values():
                    client.close()


def callbacks_of(gw: GatewayProcess, account_id: str) -> list[tuple[str, str]]:
    """The party's /register callbacks, read from the gateway's SQLite file (no API lists them)."""
    db = pathlib.Path(gw.database_url.split("///", 1)[1])
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        rows = conn.execute(
            "SELECT msisdn, callback_url FROM callbacks WHERE account_id = ? ORDER BY msisdn", (account_id,)
        ).fetchall()
    return [(str(a), str(b)) for a, b in rows]


def state_of(w: World, p: Party) -> dict[str, Any]:
    """Everything of the party a call by the other could change, read back as the party itself."""
    out: dict[str, Any] = {}
    c, t = p.basic(w.gw), p.bearer(w.gw)
    for key, client, url, params in [
        ("out", c, f"/v1/messages/{p.out_id}", {}),
        ("in", c, f"/v1/messages/{p.in_id}", {}),
        ("numbers", c, "/account/numbers", {}),
        ("numbers-kpn", t, NEXMO + "/phone-numbers/account/numbers", {}),
        ("webhooks", t, "/v1/account/webhooks", {}),
        ("deliveries-out", c, "/v1/webhooks/deliveries", {"message": p.out_id}),
        ("deliveries-in", c, "/v1/webhooks/deliveries", {"message": p.in_id}),
        ("account", c, "/v1/account", {}),
        ("script", c, f"/sandbox/handsets/{w.handset}/script", {}),
        ("behaviour", t, "/sandbox/behaviour", {}),
    ]:
        r = client.get(url, params=params)
        assert r.status_code == 200, (key, r.text)
        out[key] = r.json()
    out["account"].pop("quota")  # its reset time is a clock, not state
    out["callbacks"] = callbacks_of(w.gw, p.account_id)
    return out


# -- running a row -----------------------------------------------------------------------------------------------
def _read_stream(client: httpx.Client, url: str, params: Mapping[str, str]) -> str:
    """The SSE stream up to its first ``messages`` frame (bounded by a deadline)."""
    text, deadline = "", time.monotonic() + 8
    with client.stream("GET", url, params=params, timeout=5) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            text += line + "\n"
            if (line.startswith("data:") and "event: messages" in text) or time.monotonic() > deadline:
                break
    return text


def call(w: World, case: Case, me: Party, other: Party, tag: str) -> tuple[httpx.Response | None, str, str]:
    """(response, body text, everything the caller sent)."""
    ctx = {"me": me, "other": other, "w": w, "tag": tag}
    url = fill(case.url or case.route, **ctx)
    params = dict(fill(case.params or {}, **ctx))
    form = fill(case.form, **ctx) if case.form is not None else None
    body = fill(case.json, **ctx) if case.json is not None else None
    if case.auth == "params":
        params.update(api_key=me.api_key, api_secret=me.secret)
    sent = " ".join([url, orjson.dumps([params, form, body]).decode()])
    client = me.bearer(w.gw) if case.auth == "token" else w.anonymous if case.auth == "params" else me.basic(w.gw)
    if case.sse:
        return None, _read_stream(client, url, params), sent
    r = client.request(case.method, url, params=params or None, data=form, json=body)
    return r, r.text, sent


def assert_sent_as(w: World, me: Party, other: Party, tag: str) -> None:
    """What a SEND row created is the caller's (and done: sent and delivered, or received) and not the other's."""
    final = {"delivered", "received"}
    c = me.basic(w.gw)
    made = wait_for(
        lambda: (
            (ms := c.get("/v1/messages", params={"q": tag}).json()["messages"])
            and all(m["status"] in final for m in ms)
            and ms
        )
    )
    assert all(tag in (m["text"] or "") for m in made)
    c = other.basic(w.gw)
    assert c.get("/v1/messages", params={"q": tag}).json()["messages"] == []
    for m in made:
        assert c.get(f"/v1/messages/{m['id']}").status_code == 404


@pytest.mark.parametrize("attacker", ["B", "A"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_matrix(world: World, case: Case, attacker: str) -> None:
    me = world.parties[attacker]
    other = world.parties["A" if attacker == "B" else "B"]
    tag = "iso" + secrets.token_hex(5)
    changes = case.method not in ("GET", "HEAD")
    before = state_of(world, other) if changes else None

    r, text, sent = call(world, case, me, other, tag)
    status = r.status_code if r is not None else 200
    assert status < 500, text
    assert status == case.status, text
    leaked = [m for m in other.markers() if m in text and m not in sent]
    assert not leaked, f"{other.name}'s {leaked} in {text[:2000]}"
    if case.error is not None:
        assert r is not None and contains(r.json(), case.error), text
    if case.shows is not None:
        assert fill(case.shows, me=me, other=other, w=world) in text, text[:2000]
    if case.check is not None:
        assert r is not None
        case.check(world, me, r)
    if case.kind == SEND:
        assert_sent_as(world, me, other, tag)
    if case.after is not None:
        assert r is not None
        case.after(world, me, r)
    if before is not None:
        assert state_of(world, other) == before


# -- the guard: no route can skip the matrix ---------------------------------------------------------------------
def app_routes(data_dir: pathlib.Path) -> set[tuple[str, str]]:
    """(method, path template) of every route the gateway serves, built the way ``smsgate serve`` builds it."""
    from smsgate.api.app import create_app
    from smsgate.runtime import Runtime
    from smsgate.settings import Settings

    app = create_app(Runtime(Settings(data_dir=data_dir)))
    try:  # FastAPI >= 0.165 keeps included routers lazily
        from fastapi.routing import iter_route_contexts  # type: ignore[attr-defined,unused-ignore]

        routes: list[Any] = list(iter_route_contexts(app.routes))
    except ImportError:
        routes = list(app.routes)
    return {(m, r.path) for r in routes for m in (getattr(r, "methods", None) or ()) if m != "HEAD"}


def test_every_route_is_in_the_matrix(tmp_path: pathlib.Path) -> None:
    served = app_routes(tmp_path)
    assert len(served) > 40, served  # the route table was read, not an empty stand-in
    covered = {(c.method, c.route) for c in CASES}
    elsewhere = set(ISOLATED_ELSEWHERE)
    missing = served - covered - set(NOT_ACCOUNT_SCOPED) - elsewhere
    assert not missing, f"routes with no isolation row (add a Case, or a NOT_ACCOUNT_SCOPED reason): {sorted(missing)}"
    stale = (covered | set(NOT_ACCOUNT_SCOPED) | elsewhere) - served
    assert not stale, f"rows for routes the app does not serve: {sorted(stale)}"
    assert not covered & set(NOT_ACCOUNT_SCOPED) and not (covered | set(NOT_ACCOUNT_SCOPED)) & elsewhere
    tests = pathlib.Path(__file__).parent
    for where in ISOLATED_ELSEWHERE.values():  # the named test exists
        path, name = where.split("::")
        assert f"def {name}(" in (tests.parent.parent / path).read_text(), where


# -- tokens ------------------------------------------------------------------------------------------------------
def _set_status(gw: GatewayProcess, account_id: str, status: str) -> None:
    """As ``smsgate accounts disable`` does: straight in the store, from another process's point of view."""

    async def run() -> None:
        engine = store_engine.create(gw.database_url)
        try:
            await store_accounts.AccountStore(engine).update(account_id, status=status)
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_disabled_accounts_are_refused(world: World) -> None:
    """A token issued while its account was active is refused once the account is disabled, on every dialect
    that takes tokens; a disabled account gets no new token and its key/secret open no dialect."""
    gw = world.gw
    was_active = gw.create_account("iso-was-active")
    token = gw.token(was_active)
    _set_status(gw, was_active["account_id"], "disabled")
    with gw.client(headers={"authorization": f"Bearer {token}"}) as c:
        # the token was never used, so no credential cache holds the account: refused at once
        r = c.post("/messaging/sms-kpn/v1/send", json={"messages": [{"mobile_number": "0612345678", "content": "x"}]})
        assert r.status_code == 401 and "fault" in r.json()
        r = c.get(NEXMO + "/phone-numbers/account/numbers")
        assert r.status_code == 401 and "fault" in r.json()
        assert c.get("/v1/messages").json()["error"]["code"] == "invalid_token"
        assert c.get("/console/api/whoami").status_code == 401
    # never active, so never cached: the refusal does not depend on cache timing
    disabled = gw.create_account("iso-disabled", status="disabled")
    r = world.anonymous.post(
        "/oauth/client_credential/accesstoken?grant_type=client_credentials",
        data={"client_id": disabled["api_key"], "client_secret": disabled["api_secret"]},
    )
    assert r.status_code == 401 and r.json()["ErrorCode"] == "invalid_client"
    with gw.client(auth=(disabled["api_key"], disabled["api_secret"])) as c:
        r = c.get("/account/get-balance")
        assert r.status_code == 401 and r.json()["error-code"] == "401"
        r = c.post("/v1/send-sms", json={"to": world.handset, "text": "x"})
        assert r.status_code == 403 and r.json()["code"] == 4030
        assert c.get("/v1/messages").json()["error"]["code"] == "unauthorized"
