"""Destination network (MCC-MNC) for routing, pricing and Vonage's ``network-code``.

Numbers are portable, so the operator's ported-number table wins; otherwise we fall back to the
original range holder from libphonenumber's carrier data. A carrier name we cannot map to exactly
one code stays unknown (None) rather than being guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import phonenumbers
from phonenumbers import carrier
from phonenumbers.carrierdata import CARRIER_LONGEST_PREFIX

from smsgate.core.numbers import Number

__all__ = ["NETWORK_NAMES", "network_for", "network_name"]

NETWORK_NAMES: Mapping[str, str] = MappingProxyType(
    {
        # Netherlands (MCC 204)
        "20402": "Tele2 (T-Mobile/Odido)",
        "20403": "Enreach (Voiceworks)",
        "20404": "Vodafone",
        "20406": "Vectone Mobile (Mundio Mobile)",
        "20407": "Teleena (Tata Communications MOVE)",
        "20408": "KPN",
        "20409": "Lycamobile",
        "20410": "KPN",
        "20412": "Telfort (KPN)",
        "20415": "Ziggo",
        "20416": "T-Mobile/Odido",
        "20417": "Lebara",
        "20418": "Ziggo Services (ex-UPC)",
        "20420": "T-Mobile/Odido (ex-Orange)",
        "20423": "KORE Wireless (ex-ASPIDER/Wyless)",
        "20428": "Lancelot",
        "20433": "Truphone",
        "20469": "KPN",
        # Belgium (206)
        "20601": "Proximus",
        "20606": "Lycamobile",
        "20607": "Vectone Mobile",
        "20610": "Orange Belgium",
        "20620": "BASE (Telenet)",
        # France (208)
        "20801": "Orange France",
        "20810": "SFR",
        "20815": "Free Mobile",
        "20820": "Bouygues Telecom",
        # United Kingdom (234)
        "23410": "O2",
        "23415": "Vodafone",
        "23420": "Three",
        "23430": "EE",
        "23433": "EE (Orange)",
        # Germany (262)
        "26201": "Telekom (T-Mobile)",
        "26202": "Vodafone",
        "26203": "Telefónica (E-Plus)",
        "26207": "Telefónica (O2)",
    }
)

# (country calling code, libphonenumber "en" carrier name) -> MCC-MNC of that range holder.
_CARRIER_CODES: Mapping[tuple[int, str], str] = MappingProxyType(
    {
        (31, "KPN"): "20408",
        (31, "Vodafone Libertel B.V."): "20404",
        (31, "T-Mobile"): "20416",
        (31, "T-Mobile Thuis"): "20416",
        (31, "Tele2"): "20402",
        (31, "Teleena (MVNE)"): "20407",
        (31, "Teleena"): "20407",
        (31, "Telfort"): "20412",
        (31, "Lebara"): "20417",
        (31, "Lycamobile"): "20409",
        (31, "Vectone Mobile/Delight Mobile"): "20406",
        (31, "Lancelot"): "20428",
        (32, "Proximus"): "20601",
        (32, "Orange"): "20610",
        (32, "Lycamobile"): "20606",
        (32, "Vectone"): "20607",
        (33, "Orange France"): "20801",
        (33, "SFR"): "20810",
        (33, "Free Mobile"): "20815",
        (33, "Bouygues"): "20820",
        (44, "O2"): "23410",
        (44, "Vodafone"): "23415",
        (44, "Three"): "23420",
        (44, "EE"): "23430",
        (44, "Orange"): "23433",
        (49, "T-Mobile"): "26201",
        (49, "Vodafone"): "26202",
        (49, "Eplus"): "26203",
        (49, "O2"): "26207",
    }
)

# libphonenumber gives carrier names only for these types (carrier.name_for_number checks the same).
_CARRIER_KINDS = frozenset({"mobile", "fixed_line_or_mobile", "pager"})
_PREFIX_LENGTH: int = CARRIER_LONGEST_PREFIX
_CACHE_LIMIT = 65536
_prefix_cache: dict[str, str | None] = {}


def network_name(code: str) -> str | None:
    """Operator name of an MCC-MNC, for logs and the console."""
    return NETWORK_NAMES.get(code)


def network_for(number: Number, ported: Mapping[str, str] | None = None) -> str | None:
    """MCC-MNC of the destination: ported-number table first, else the original range holder, else None."""
    if ported:
        code = ported.get(number.e164) or ported.get(number.digits)
        if code:
            return code
    if number.kind not in _CARRIER_KINDS:
        return None
    # The carrier data is keyed by E.164 prefixes of at most _PREFIX_LENGTH digits, so the answer
    # depends on that prefix only: cache it there.
    prefix = number.digits[:_PREFIX_LENGTH]
    try:
        return _prefix_cache[prefix]
    except KeyError:
        pass
    code = _range_holder(number.e164)
    if len(_prefix_cache) >= _CACHE_LIMIT:
        _prefix_cache.clear()
    _prefix_cache[prefix] = code
    return code


def _range_holder(e164: str) -> str | None:
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    name = carrier.name_for_valid_number(parsed, "en")
    if not name:
        return None
    return _CARRIER_CODES.get((parsed.country_code or 0, name))
