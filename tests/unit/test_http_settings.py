"""HTTP connector settings and templates: strict tables (unknown keys with "did you mean"), secrets kept out of
repr, the circuit breaker's states on a fake clock."""

from __future__ import annotations

from typing import Any

import pytest

from smsgate.connectors import http as http_connectors
from smsgate.connectors import registry
from smsgate.connectors.http import circuit, generic, kaarai, kpn, template, vonage

KPN = {"name": "kpn", "type": "kpn", "client_id": "the-id", "client_secret": "the-secret"}


def test_every_type_reads_its_table_and_keeps_secrets_out_of_repr() -> None:
    tables: dict[str, dict[str, Any]] = {
        "kpn": KPN,
        "vonage": {"name": "v", "type": "vonage", "api_key": "k", "api_secret": "vonage-secret"},
        "kaarai": {"name": "k", "type": "kaarai", "url": "https://lab.example:15000/v1/send-sms", "username": "u",
                   "password": "kaarai-secret"},
        "http": {"name": "g", "type": "http", "url": "https://sms.example/send?key=url-secret",
                 "headers": {"Authorization": "Bearer header-secret"}, "body": {"to": "{to}", "text": "{text}"}},
    }  # fmt: skip
    for kind, table in tables.items():
        c = registry.build(table, registry.Defaults(public_url="https://gw.example"))
        assert kind == c.TYPE
        text = repr(c.settings) + c.health().detail
        for secret in ("the-secret", "vonage-secret", "kaarai-secret", "url-secret", "header-secret"):
            assert secret not in text
    assert kpn.KpnSettings.from_mapping(KPN).base_url == "https://api-prd.kpn.com"
    assert vonage.VonageSettings.from_mapping(tables["vonage"]).base_url == "https://rest.nexmo.com"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({**KPN, "max_tsp": 5}, "connector 'kpn' (type 'kpn'): unknown key 'max_tsp' (did you mean max_tps?)"),
        ({**KPN, "timeout": "10s"}, "'timeout': must be a number"),
        ({**KPN, "retry_on_timeout": 1}, "'retry_on_timeout': must be true or false"),
        ({**KPN, "concurrency": 0}, "'concurrency': must be 1..1000"),
        ({**KPN, "sender": "TwelveLetter"}, "'sender': 1 to 11 characters"),
        ({k: v for k, v in KPN.items() if k != "client_secret"}, "missing key 'client_secret'"),
        ({"name": "v", "type": "vonage", "api_key": "k"}, "give api_secret or signature_secret"),
        ({"name": "v", "type": "vonage", "api_key": "k", "api_secret": "s", "signature_method": "sha3"}, "one of"),
        ({"name": "k", "type": "kaarai", "url": "lab.example/v1", "username": "u", "password": "p"}, "http(s) URL"),
    ],
)
def test_bad_tables_name_the_key_and_the_fix(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as err:
        http_connectors.TYPES[table["type"]][0].from_mapping(table)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"body": {"text": "{txt}"}}, "unknown placeholder {txt} (did you mean text?)"),
        ({"body": "{text!r}"}, "takes no format or conversion"),
        ({"url": "https://sms.example/{to"}, "literal brace"),
        ({"method": "GET", "body": {"to": "{to}"}}, "a GET sends no body"),
        ({"id_path": "result.id[x]"}, None),  # a plain name is a field name, whatever it looks like
        ({"id_path": "$.result..id"}, "is not a path such as"),
        ({"success_body": "("}, "not a regular expression"),
        ({"receipt": {"id": "ref", "status": "st"}}, "name the upstream's word(s) for delivered"),
        ({"receipt": {"id": "ref", "status": "st", "delivered": ["OK"], "tokn": "x"}}, "did you mean token"),
    ],
)
def test_generic_templates_are_checked_when_read(extra: dict[str, Any], message: str | None) -> None:
    table = {"name": "g", "type": "http", "url": "https://sms.example/send", "body": {"to": "{to}"}, **extra}
    if message is None:
        generic.GenericSettings.from_mapping(table)
        return
    with pytest.raises(ValueError) as err:
        generic.GenericSettings.from_mapping(table)
    assert message in str(err.value)


def test_templates_escape_for_where_they_land() -> None:
    values = {k: "" for k in template.PLACEHOLDERS} | {"text": 'a "b" & c=d\n', "to": "316"}
    t = template.Template.parse("body", '{{"text": "{text}"}} to={to}')
    assert t.render(values, template.json_escape) == '{"text": "a \\"b\\" & c=d\\n"} to=316'
    assert (
        template.Template.parse("url", "?t={text}").render(values, template.url_escape)
        == "?t=a%20%22b%22%20%26%20c%3Dd%0A"
    )
    assert template.Path.parse("id", "$.a.list[1].id").find({"a": {"list": [{}, {"id": 7}]}}) == 7
    assert template.Path.parse("id", "$.a.missing").find({"a": {}}) is None


def test_kaarai_needs_its_url() -> None:
    with pytest.raises(ValueError, match="missing key 'url'"):
        kaarai.KaaraiSettings.from_mapping({"name": "k", "type": "kaarai", "username": "u", "password": "p"})


def test_circuit_opens_after_failures_in_a_row_and_probes_after_the_delay() -> None:
    now = [0.0]
    c = circuit.Circuit(3, 10.0, clock=lambda: now[0])
    c.failure("refused")
    c.failure("refused")
    c.success()  # a success in between resets the count
    c.failure("refused")
    c.failure("refused")
    assert c.state is circuit.State.CLOSED
    c.failure("refused")
    assert c.state is circuit.State.OPEN and c.retry_in() == 10.0
    now[0] = 10.0
    assert c.state is circuit.State.HALF_OPEN
    c.failure("still refused")  # the probe failed: open again, for another interval
    assert c.state is circuit.State.OPEN and c.opened == 2
    now[0] = 20.0
    c.success()
    assert c.state is circuit.State.CLOSED and c.failures == 0
    c.trip("credentials refused")  # unhealthy: open at once
    assert c.state is circuit.State.OPEN and c.reason == "credentials refused"


def test_the_http_base_is_abstract_and_every_connector_implements_its_hooks() -> None:
    """``where`` and ``exchange`` are abstract: a connector that forgets one cannot be made, every shipped one can."""
    from smsgate.connectors.http import base as http_base

    class Forgetful(http_base.HttpConnector):
        @property
        def where(self) -> str:
            return "upstream.example"

    for cls in (http_base.HttpConnector, Forgetful):
        with pytest.raises(TypeError, match="abstract"):
            cls(None)  # type: ignore[abstract,arg-type]
    for shipped in (generic.GenericConnector, kaarai.KaaraiConnector, kpn.KpnConnector, vonage.VonageConnector):
        assert not shipped.__abstractmethods__, shipped
