"""What the shop texts: a sign-up code, and an order confirmation the customer answers YES to."""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Mapping
from typing import Any

from shop.sms import Sms


class Signup:
    def __init__(self, sms: Sms) -> None:
        self._sms = sms
        self._codes: dict[str, str] = {}

    def start(self, phone: str) -> None:
        code = f"{secrets.randbelow(10**6):06d}"
        self._codes[phone] = code
        self._sms.send(phone, f"Your MyShop code is {code}. It expires in 10 minutes.")

    def confirm(self, phone: str, code: str) -> bool:
        return hmac.compare_digest(self._codes.get(phone, ""), code)


class Orders:
    def __init__(self, sms: Sms) -> None:
        self._sms = sms
        self._asked: dict[str, str] = {}  # phone -> the order waiting for its YES
        self.confirmed: set[str] = set()

    def ask(self, phone: str, order: str) -> None:
        self._asked[phone] = order
        self._sms.send(phone, f"Reply YES to confirm order {order}")

    def on_inbound(self, event: Mapping[str, Any]) -> None:
        """The inbound webhook (smsgate's JSON event): a YES from a phone confirms the order it was asked about."""
        if event.get("type") != "message.received":
            return
        data = event["data"]
        if re.match(r"(?i)\s*yes\b", data.get("text") or "") and data["from"] in self._asked:
            self.confirmed.add(self._asked.pop(data["from"]))
