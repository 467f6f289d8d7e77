"""Vonage request signatures: the documented algorithm, and the official SDK's own output (vonage 4.9.1)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pytest
from vonage_http_client.auth import Auth  # type: ignore[import-untyped]
from vonage_sms import SmsMessage  # type: ignore[import-untyped]

from smsgate.core import signing

PARAMS = {"api_key": "abcd1234", "from": "KPN", "to": "31612345678", "text": "Hi & bye = ok", "timestamp": "1700000000"}


def _documented(params: dict[str, str], secret: str, method: str) -> str:
    base = "".join(f"&{k}={v.replace('&', '_').replace('=', '_')}" for k, v in sorted(params.items()) if k != "sig")
    if method == "md5hash":
        return hashlib.md5((base + secret).encode()).hexdigest()
    return hmac.new(secret.encode(), base.encode(), getattr(hashlib, method)).hexdigest()


@pytest.mark.parametrize("method", signing.METHODS)
def test_sign_matches_the_documented_algorithm(method: str) -> None:
    assert signing.vonage_sign(PARAMS, "secret", method) == _documented(PARAMS, "secret", method)


@pytest.mark.parametrize("method", signing.METHODS)
def test_verify_accepts_right_and_refuses_wrong(method: str) -> None:
    signed = {**PARAMS, "sig": _documented(PARAMS, "secret", method)}
    assert signing.vonage_verify(signed, "secret", method)
    assert signing.vonage_verify({**signed, "sig": signed["sig"].upper()}, "secret", method)  # hex is case-blind
    assert not signing.vonage_verify(signed, "other", method)
    assert not signing.vonage_verify({**signed, "text": "changed"}, "secret", method)
    assert not signing.vonage_verify(PARAMS, "secret", method)  # no sig at all


def test_unknown_method_refused() -> None:
    with pytest.raises(ValueError):
        signing.vonage_sign(PARAMS, "secret", "crc32")


def _sdk_wire(message: SmsMessage, secret: str, method: str) -> dict[str, str]:
    """What vonage-http-client 1.5.2 puts on the wire in signature mode: it signs the full model dump
    (None values included), then ``requests`` drops the None values from the form body."""
    auth = Auth(api_key="abcd1234", signature_secret=secret, signature_method=method)
    params: dict[str, Any] = message.model_dump(by_alias=True)
    params["api_key"] = auth.api_key
    params["sig"] = auth.sign_params(params)
    return {k: str(v) for k, v in params.items() if v is not None}


@pytest.mark.parametrize("method", ["md5", "sha1", "sha256", "sha512"])
def test_verify_accepts_the_official_sdk(method: str) -> None:
    msg = SmsMessage(to="31612345678", from_="KPN", text="Hello & = é", client_ref="r1", status_report_req=True)
    wire = _sdk_wire(msg, "s3cret", method)
    assert "body" not in wire and "sig" in wire
    # the SDK's digest is not the documented one over the received params (reference notes §1.9) ...
    assert wire["sig"] != signing.vonage_sign(wire, "s3cret", method)
    # ... but the verifier's fallback accepts it, and still refuses a wrong secret or a changed value
    assert signing.vonage_verify(wire, "s3cret", method)
    assert not signing.vonage_verify(wire, "wrong", method)
    assert not signing.vonage_verify({**wire, "text": "Hello"}, "s3cret", method)


def test_sdk_none_keys_cover_the_sdk_model() -> None:
    """If the SDK grows a field, the fallback must list it, or its signatures stop verifying."""
    dumped = SmsMessage(to="1", from_="a", text="t").model_dump(by_alias=True)
    optional = {k for k, v in dumped.items() if v is None}
    assert optional == set(signing.VONAGE_SDK_NONE_KEYS)
