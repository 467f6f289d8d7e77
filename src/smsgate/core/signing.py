"""Vonage request and webhook signatures (``sig`` + ``timestamp``), and our own webhook HMAC.

Vonage: drop ``sig``; sort the parameters by key; in each value replace ``&`` and ``=`` with ``_``; join as
``&key=value`` (with a leading ``&``). ``md5hash`` appends the secret and takes MD5; ``md5``/``sha1``/``sha256``/
``sha512`` are HMACs keyed with the secret. Hex digests compare case-insensitively.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

METHODS = ("md5hash", "md5", "sha1", "sha256", "sha512")

# vonage-sms 1.2.0 signs its whole SmsMessage model including unset keys as "None" (reference notes §1.9);
# verifying also against that form lets the official SDK's signature mode work.
VONAGE_SDK_NONE_KEYS = (
    "account-ref",
    "body",
    "callback",
    "client-ref",
    "content-id",
    "entity-id",
    "message-class",
    "protocol-id",
    "sig",
    "status-report-req",
    "trusted-number",
    "ttl",
    "type",
    "udh",
)


def _base_string(params: Mapping[str, str], *, skip_sig: bool = True) -> str:
    return "".join(
        "&{}={}".format(k, str(v).replace("&", "_").replace("=", "_"))
        for k, v in sorted(params.items())
        if not (skip_sig and k == "sig")
    )


def _digest(base: str, secret: str, method: str) -> str:
    if method == "md5hash":
        return hashlib.md5((base + secret).encode("utf-8")).hexdigest()
    return hmac.new(secret.encode("utf-8"), base.encode("utf-8"), getattr(hashlib, method)).hexdigest()


def vonage_sign(params: Mapping[str, str], secret: str, method: str = "md5hash") -> str:
    if method not in METHODS:
        raise ValueError(f"unknown signature method {method!r}")
    return _digest(_base_string(params), secret, method)


def vonage_verify(params: Mapping[str, str], secret: str, method: str = "md5hash") -> bool:
    """True if ``params['sig']`` is right, by the documented algorithm or the official Python SDK's variant."""
    sig = str(params.get("sig", "")).lower()
    if not sig:
        return False
    if hmac.compare_digest(vonage_sign(params, secret, method), sig):
        return True
    padded = {k: "None" for k in VONAGE_SDK_NONE_KEYS}
    padded.update({k: v for k, v in params.items() if k != "sig"})
    return hmac.compare_digest(_digest(_base_string(padded, skip_sig=False), secret, method), sig)


def event_signature(secret: str, timestamp: int, body: bytes) -> str:
    """Our own webhooks: ``X-Smsgate-Signature: t=<ts>,v1=<hex HMAC-SHA256 of "<ts>." + body>``."""
    mac = hmac.new(secret.encode("utf-8"), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"
