"""A test's account on the test gateway, and what its handsets receive.

Each ``wait_for_sms`` returns the newest message the handset got from the account after the one it returned last
(or after the account was made, or last reset), so two waits in a row see two messages. Waiting is the gateway's
long poll: it returns as soon as the message is on the handset, not after a polling interval.
"""

from __future__ import annotations

import dataclasses
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from smsgate.testing.gateway import Gateway

MAX_WAIT = 30.0  # the gateway's longest single wait; longer timeouts wait again


@dataclasses.dataclass(frozen=True, slots=True)
class Sms:
    """A message as the handset shows it; ``otp`` is the one-time code found in it (None when there is none)."""

    id: str
    sender: str
    to: str
    text: str | None
    otp: str | None
    status: str
    encoding: str
    parts: int
    at: float  # when the gateway accepted it (epoch seconds)
    received_at: float | None  # when the handset got it

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Sms:
        return cls(
            id=body["id"],
            sender=body["from"],
            to=body["to"],
            text=body["text"],
            otp=body["otp"],
            status=body["status"],
            encoding=body["encoding"],
            parts=len(body["parts"]),
            at=body["at"],
            received_at=body["received_at"],
        )


def handset(number: str) -> str:
    """A handset's number as the gateway stores it (E.164 with ``+``), from any form the gateway takes."""
    from smsgate import errors
    from smsgate.core import numbers

    try:
        return numbers.parse_international(number).e164
    except errors.InvalidNumber:
        return numbers.parse_dutch_mobile(number).e164


class Account:
    """Credentials (``api_key``, ``api_secret``), the virtual ``number`` the account owns (its default sender), the
    gateway's ``url``, and the sandbox seen from this account."""

    def __init__(self, gateway: Gateway, account_id: str, api_key: str, api_secret: str, number: str) -> None:
        self.gateway = gateway
        self.id = account_id
        self.api_key = api_key
        self.api_secret = api_secret
        self.number = number
        self.url = gateway.url
        self._http = httpx.Client(base_url=gateway.url, auth=(api_key, api_secret), verify=gateway.verify, timeout=10)
        self._since = time.time()  # messages accepted before this are not news
        self._seen: dict[str, str] = {}  # handset -> id of the last message a wait returned
        self._claimed: list[str] = []

    # -- what handsets receive ------------------------------------------------------------------------------------
    def wait_for_sms(self, to: str, timeout: float = 5.0, *, otp_pattern: str | None = None) -> Sms:
        """The next SMS the handset ``to`` receives from this account, within ``timeout`` seconds (AssertionError
        saying what the handset did get otherwise)."""
        msisdn = handset(to)
        deadline = time.monotonic() + timeout
        while True:
            wait = max(0.0, min(deadline - time.monotonic(), MAX_WAIT))
            params: dict[str, Any] = {"wait": f"{wait:.3f}", "since": self._seen.get(msisdn, f"{self._since:.6f}")}
            if otp_pattern is not None:
                params["otp_pattern"] = otp_pattern
            r = self._http.get(f"{self._handset_path(msisdn)}/messages/latest", params=params, timeout=wait + 10)
            if r.status_code == 200:
                sms = Sms.from_json(r.json())
                self._seen[msisdn] = sms.id
                return sms
            if r.status_code != 404:
                raise AssertionError(f"the smsgate test gateway answered {r.status_code}: {r.text}")
            if time.monotonic() >= deadline:
                raise AssertionError(self._nothing_came(msisdn, timeout))

    def _nothing_came(self, msisdn: str, timeout: float) -> str:
        """Why a wait found nothing, as far as the gateway can tell: what the account last sent to the number."""
        sent = self._http.get("/v1/messages", params={"number": msisdn, "direction": "outbound", "limit": 3})
        recent = sent.json().get("messages", []) if sent.status_code == 200 else []
        lines = [f"no new SMS to {msisdn} within {timeout:g} s"]
        if not recent:
            lines.append(f"  the account ({self.api_key}) sent nothing to {msisdn}")
        for m in recent:
            lines.append(f"  sent {m['id']} at {m['created_at']:.3f}: status {m['status']}, text {m['text']!r}")
        return "\n".join(lines)

    def messages(self, to: str) -> list[dict[str, Any]]:
        """The handset's conversation with this account, newest first (``GET /sandbox/handsets/{msisdn}/messages``)."""
        r = self._http.get(f"{self._handset_path(handset(to))}/messages")
        r.raise_for_status()
        return list(r.json()["messages"])

    def received(self) -> list[dict[str, Any]]:
        """The messages handsets sent to this account (inbound), newest first."""
        r = self._http.get("/v1/messages", params={"direction": "inbound", "limit": 200})
        r.raise_for_status()
        return list(r.json()["messages"])

    # -- what handsets send -----------------------------------------------------------------------------------
    def reply(self, from_handset: str, to: str, text: str) -> None:
        """The handset sends ``text`` to ``to`` (the number or sender name your application sent from), which the
        account is first made to own if it does not (the gateway delivers inbound only to the owner)."""
        self.own(to)
        r = self._http.post(f"{self._handset_path(handset(from_handset))}/reply", json={"to": to, "text": text})
        if r.status_code != 202:
            raise AssertionError(f"the handset could not reply ({r.status_code}): {r.text}")

    def own(self, *addresses: str) -> None:
        """Make these numbers or sender names the account's (taken from any other test's account), so replies to
        them, typed or scripted, reach it. Given back when the test ends."""
        for address in addresses:
            if self.gateway.claim(self.id, address):
                self._claimed.append(address)

    def script(self, to: str, rules: Sequence[Mapping[str, Any]]) -> None:
        """How the handset answers this account's messages: ``[{"match": regex, "reply": text, "delay_ms": n}]``.
        The handset answers the message's sender: ``own`` it first when it is not ``number``."""
        r = self._http.put(f"{self._handset_path(handset(to))}/script", json={"rules": list(rules)})
        if r.status_code != 200:
            raise AssertionError(f"the script was refused ({r.status_code}): {r.text}")

    # -- the network ------------------------------------------------------------------------------------------
    def network(
        self,
        *,
        duplicate: float = 0.0,
        missing: float = 0.0,
        out_of_order: bool = False,
        late_by: float = 0.0,
        throttle: float = 0.0,
    ) -> None:
        """How the sandbox network treats this account's messages (all off: the normal network)."""
        receipts = {"duplicate": duplicate, "missing": missing, "out_of_order": out_of_order, "late_by": late_by}
        r = self._http.put("/sandbox/behaviour", json={"receipts": receipts, "throttle": throttle})
        if r.status_code != 200:
            raise AssertionError(f"the network behaviour was refused ({r.status_code}): {r.text}")

    def reset(self) -> None:
        """Conversations, scripts and network behaviour gone; later waits see only later messages."""
        self._http.post("/sandbox/reset").raise_for_status()
        self._since = time.time()
        self._seen.clear()

    def close(self) -> None:
        """At the test's end: nothing of it runs on (waiting scripted answers, misbehaviour), claims given back."""
        try:
            self.reset()
            for address in self._claimed:
                self.gateway.release(address)
            self.gateway.release(self.number)
        finally:
            self._http.close()

    @staticmethod
    def _handset_path(msisdn: str) -> str:
        return "/sandbox/handsets/" + urllib.parse.quote(msisdn, safe="")
